// The inspection page: yesterday's and today's table per village and camera
// (worst first, as the API sorts them) and a 30-day chart per village in inline SVG.
import { apply, clockTime, t } from "/static/i18n.js";


let tables = [];
let month = [];

function el(tag, text = "", cls = "") {
  const node = document.createElement(tag);
  if (text !== "") node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function percent(share) {
  return share === null ? "—" : `${(share * 100).toFixed(1)} %`;
}

function startOfDay(offset) {
  const when = new Date();
  when.setHours(0, 0, 0, 0);
  when.setDate(when.getDate() + offset);
  return when.getTime() / 1000;
}

async function load(since, until) {
  const query = new URLSearchParams({ since, until });
  const site = new URLSearchParams(location.search).get("site");
  if (site) query.set("site", site);
  const answer = await fetch(`/api/inspection?${query}`);
  if (!answer.ok) throw new Error(await answer.text());
  return (await answer.json()).days;
}

function cameraRow(cam) {
  const row = el("tr", "", cam.share !== null && cam.share < 0.95 ? "bad" : "");
  const spells = cam.offline_periods
    .map((p) => `${clockTime(p.start)}–${clockTime(p.end)} ${p.reasons.join(" / ")}`)
    .join("; ");
  const tamper = cam.tamper_periods.map((p) => `${t("tamper_" + p.reason)} ${p.minutes}′`).join("; ");
  // A camera the node came to know during the day is counted from then on.
  const since = cam.since !== null && new Date(cam.since * 1000).toTimeString().slice(0, 5);
  const name = since ? `${cam.name} (${t("counted_since", { time: since })})` : cam.name;
  for (const [text, cls] of [
    [name, ""],
    [cam.online_minutes, "num"],
    [cam.offline_minutes, "num"],
    [percent(cam.share), "num"],
    [spells, ""],
    [tamper, ""],
    [cam.recording === null ? "—" : percent(cam.recording), "num"],
  ]) {
    row.append(el("td", String(text), cls));
  }
  return row;
}

function drawTables() {
  const main = document.getElementById("days");
  main.replaceChildren();
  for (const day of [...tables].reverse()) {
    main.append(el("h2", `${day.date === tables.at(-1)?.date ? t("today") : t("yesterday")} · ${day.date}`));
    if (!day.villages.length) main.append(el("p", t("no_data"), "no-data"));
    for (const village of day.villages) {
      main.append(el("h3", `${village.name} · ${t("camera_hours_online")} ${percent(village.share)}`));
      const table = el("table");
      const head = el("tr");
      for (const key of ["camera", "online_min", "offline_min", "share", "offline_periods", "tamper", "recording"]) {
        head.append(el("th", t(key)));
      }
      table.append(head, ...village.cameras.map(cameraRow));
      main.append(table);
    }
  }
}

function drawCharts() {
  const section = document.getElementById("charts");
  section.replaceChildren(el("h2", t("thirty_days")));
  const villages = new Map();
  for (const day of month) {
    for (const v of day.villages) {
      if (!villages.has(v.site)) villages.set(v.site, { name: v.name, days: [] });
      villages.get(v.site).days.push({ date: day.date, share: v.share });
    }
  }
  const NS = "http://www.w3.org/2000/svg";
  for (const [site, village] of villages) {
    section.append(el("h3", village.name));
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("width", "620");
    svg.setAttribute("height", "120");
    svg.dataset.site = site;
    village.days.forEach((d, i) => {
      if (d.share === null) return;
      const bar = document.createElementNS(NS, "rect");
      const h = Math.round(d.share * 100);
      bar.setAttribute("x", String(10 + i * 20));
      bar.setAttribute("y", String(110 - h));
      bar.setAttribute("width", "16");
      bar.setAttribute("height", String(h));
      bar.setAttribute("class", d.share < 0.95 ? "bar low" : "bar");
      const title = document.createElementNS(NS, "title");
      title.textContent = `${d.date} ${percent(d.share)}`;
      bar.append(title);
      svg.append(bar);
    });
    section.append(svg);
  }
}

async function main() {
  apply();
  const now = Date.now() / 1000;
  tables = await load(startOfDay(-1), now);
  drawTables();
  month = await load(startOfDay(-29), now);
  drawCharts();
  const csv = document.getElementById("csv");
  csv.href = `/api/inspection.csv?since=${startOfDay(-1)}&until=${Math.floor(now)}`;
  window.inspectionReady = true;
}

addEventListener("langchange", () => {
  drawTables();
  drawCharts();
});
main();

