// The patrol team's phone page: the alarms assigned to the team, each with its
// snapshot, camera, village and time, and the three steps 接警 (accept), 到场
// (arrive), 处置完毕 (resolve, with a note and an optional photo). Each step goes on
// the bus, so the station and the village wall see it at once. The feed reconnects
// by itself (backoff, and at once when the phone is back online or woken).

import { AlarmBook, element, kindText, stateText } from "/static/alarms.js";
import { formDialog, send, shrinkPhoto, showPhoto } from "/static/alerts.js";
import { EventFeed } from "/static/events.js";
import { me } from "/static/header.js";
import { apply, clockTime, t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const feed = new EventFeed();
const names = { cameras: new Map(), sites: new Map() };
let team = null; // a patrol login's own team; others pick one with ?team=

const book = new AlarmBook({
  query: "",
  accept: (alarm) => Boolean(team) && alarm.data.team === team,
  onChange: render,
});

function render() {
  const jobs = book.list({ resolved: true }).map(job);
  if (!jobs.length) jobs.push(element("p", "none", t("no_jobs")));
  $("jobs").replaceChildren(...jobs);
}

function job(alarm) {
  const card = element("article", `job ${alarm.state}`);
  card.dataset.id = alarm.id;
  card.dataset.state = alarm.state;
  const camera = names.cameras.get(alarm.camera);
  const village = names.sites.get(alarm.site) || alarm.site;
  card.append(element("div", "where", `${village} · ${camera?.name || alarm.camera_name || alarm.camera}`));
  card.append(element("div", "what", `${clockTime(alarm.time)} · ${kindText(alarm) || t("kind_other")}`));
  card.append(element("div", "state", stateText(alarm)));
  if (alarm.image) {
    const img = card.appendChild(element("img", "snapshot"));
    Object.assign(img, { src: alarm.image, alt: t("snapshot") });
    img.addEventListener("click", () => showPhoto(alarm.image));
  }
  if (alarm.state === "resolved") return card;
  const buttons = card.appendChild(element("div", "buttons"));
  const steps = [
    ["accept", alarm.state === "assigned"],
    ["arrive", alarm.state === "accepted"],
    ["resolve", ["assigned", "accepted", "arrived"].includes(alarm.state)],
  ];
  for (const [step, enabled] of steps) {
    const button = buttons.appendChild(element("button", step, t(step)));
    button.disabled = !enabled;
    button.addEventListener("click", () => act(alarm, step, button));
  }
  return card;
}

async function act(alarm, step, button) {
  const body = { type: step, ref: alarm.id };
  if (step === "resolve") {
    const values = await formDialog(t("resolve_title", { camera: names.cameras.get(alarm.camera)?.name || alarm.camera_name || "" }), [
      { name: "note", label: t("note"), type: "textarea", maxLength: 2000 },
      { name: "photo", label: t("photo_optional"), type: "file", accept: "image/*" },
    ]);
    if (!values) return;
    body.note = values.note;
    if (values.photo) body.photo = await shrinkPhoto(values.photo);
  }
  button.disabled = true;
  if (!(await send(feed, body, `${step}_ok`))) button.disabled = false;
}

function link(up) {
  $("link").textContent = t(up ? "link_up" : "link_down");
  $("link").className = up ? "up" : "down";
}

async function start() {
  const who = await me();
  team = who.team?.id || new URLSearchParams(location.search).get("team");
  $("team").textContent = who.team?.name || team || "";
  const since = `since=${Date.now() / 1000 - 12 * 3600}`; // today's work, resolved ones too
  book.query = who.role !== "patrol" && team ? `?team=${encodeURIComponent(team)}&${since}` : `?${since}`;
  const [sites, cameras] = await Promise.all(["/api/sites", "/api/cameras"].map((u) => fetch(u).then((r) => r.json())));
  const walk = (s) => (names.sites.set(s.id, s.name), s.children.forEach(walk));
  sites.forEach(walk);
  for (const c of cameras) names.cameras.set(c.id, c);
  feed.addEventListener("event", ({ detail }) => {
    // A newly assigned alarm arrives as its assign step: fetch it with its snapshot.
    if (detail.type === "assign" && detail.data.team === team && !book.alarms.has(detail.ref)) book.reload();
    else book.onEvent(detail);
  });
  feed.addEventListener("connected", () => {
    link(true);
    book.reload();
  });
  feed.addEventListener("disconnected", () => link(false));
  link(false);
  await feed.start();
  await book.reload();
}

apply();
addEventListener("langchange", render);
window.patrol = { feed, book, ready: start() };
