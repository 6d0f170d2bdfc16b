// 报警记录: every alarm, resolved ones too, searched by village, camera, state, type,
// time and text; the same search as a CSV for the shift handover.

import { KINDS, element, kindText, stateText } from "/static/alarms.js";
import { showPhoto } from "/static/alerts.js";
import { apply, clockTime, lang, t } from "/static/i18n.js";

const form = document.getElementById("filters");
const STATES = ["", "unresolved", "open", "acked", "assigned", "accepted", "arrived", "resolved"];
const state = { cameras: [], sites: new Map() };

function query() {
  const params = new URLSearchParams();
  for (const name of ["site", "camera", "state", "kind", "q"]) {
    if (form[name].value) params.set(name, form[name].value);
  }
  for (const name of ["since", "until"]) {
    if (form[name].value) params.set(name, String(new Date(form[name].value).getTime() / 1000));
  }
  return params.toString();
}

function options() {
  const keep = Object.fromEntries(["site", "camera", "state", "kind"].map((n) => [n, form[n].value]));
  form.site.replaceChildren(new Option(t("all"), ""), ...[...state.sites].map(([id, name]) => new Option(name, id)));
  const cams = state.cameras.filter((c) => !form.site.value || c.site === form.site.value);
  form.camera.replaceChildren(new Option(t("all"), ""), ...cams.map((c) => new Option(c.name, c.id)));
  form.state.replaceChildren(...STATES.map((s) => new Option(s ? t(`filter_${s}`) : t("all"), s)));
  form.kind.replaceChildren(new Option(t("all"), ""), ...KINDS.map((k) => new Option(t(`kind_${k}`), k)));
  for (const [name, value] of Object.entries(keep)) form[name].value = value;
}

async function search() {
  const q = query();
  // The spreadsheet speaks the page's language.
  document.getElementById("csv").href = `/api/alarms.csv?${q ? `${q}&` : ""}lang=${lang()}`;
  const response = await fetch(`/api/alarms${q ? `?${q}` : ""}`, { cache: "no-store" });
  const alarms = response.ok ? await response.json() : [];
  document.getElementById("count").textContent = t("n_found", { n: alarms.length });
  const names = new Map(state.cameras.map((c) => [c.id, c.name]));
  document.getElementById("rows").replaceChildren(
    ...alarms.map((alarm) => {
      const row = element("tr", `alarm ${alarm.state}`);
      row.dataset.id = alarm.id;
      const steps = alarm.steps
        .map((s) => `${clockTime(s.time)} ${t(s.type)}${s.type === "assign" ? ` ${s.data.team_name}` : ""} ${s.by}${s.data.note ? `：${s.data.note}` : ""}`)
        .join("\n");
      const cells = [
        clockTime(alarm.time),
        state.sites.get(alarm.site) || alarm.site,
        names.get(alarm.camera) || alarm.camera,
        kindText(alarm) || "—",
        stateText(alarm),
        steps,
      ];
      for (const text of cells) row.appendChild(element("td", "", text)).style.whiteSpace = "pre-line";
      const shot = row.appendChild(element("td", ""));
      if (alarm.image) {
        const button = shot.appendChild(element("button", "", t("snapshot")));
        button.addEventListener("click", () => showPhoto(alarm.image));
      }
      return row;
    }),
  );
  return alarms.length;
}

async function start() {
  const [sites, cameras] = await Promise.all(["/api/sites", "/api/cameras"].map((u) => fetch(u).then((r) => r.json())));
  const walk = (s) => (state.sites.set(s.id, s.name), s.children.forEach(walk));
  sites.forEach(walk);
  state.cameras = cameras;
  options();
  return search();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
form.site.addEventListener("change", options);
addEventListener("langchange", () => {
  options();
  search();
});
apply();
window.history_page = { ready: start(), search };
