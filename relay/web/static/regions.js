// Drawing a camera's motion zones and masks on its current picture. A click adds
// a point (0..1 of the picture); a click on the first point, or "finish", closes
// the polygon. Saved with PUT /api/cameras/{id}/motion/regions; the analysis
// takes them at once.

import { apply, t } from "/static/i18n.js";

const CAMERA = document.body.dataset.camera;
const URL_REGIONS = `/api/cameras/${encodeURIComponent(CAMERA)}/motion/regions`;
const CLOSE_TO_FIRST = 0.02; // a click this near the first point closes the polygon
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

const state = { zones: [], masks: [], open: [], source: "" };

function kind() {
  return document.querySelector("input[name=kind]:checked").value;
}

function pointAt(event) {
  const box = $("picture").getBoundingClientRect();
  const clamp = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
  return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
}

function addPoint(event) {
  const [x, y] = pointAt(event);
  const first = state.open[0];
  if (first && state.open.length >= 3 && Math.hypot(x - first[0], y - first[1]) < CLOSE_TO_FIRST) {
    finish();
    return;
  }
  state.open.push([x, y]);
  render();
}

function finish() {
  if (state.open.length < 3) return say(t("need_three_points"));
  if (kind() === "zone") {
    const name = $("zone-name").value.trim();
    state.zones.push({ name, polygon: state.open });
    $("zone-name").value = `zone${state.zones.length + 1}`;
  } else {
    state.masks.push(state.open);
  }
  state.open = [];
  render();
}

function shape(tag, className, points) {
  const el = document.createElementNS(SVG, tag);
  el.setAttribute("class", className);
  el.setAttribute("points", points.map((p) => p.join(",")).join(" "));
  return el;
}

function render() {
  const svg = $("drawing");
  svg.replaceChildren(
    ...state.zones.map((z) => shape("polygon", "zone", z.polygon)),
    ...state.masks.map((m) => shape("polygon", "mask", m)),
    shape("polyline", "open", state.open),
  );
  const items = [
    ...state.zones.map((z, i) => [`${t("zone")} ${z.name}`, () => state.zones.splice(i, 1)]),
    ...state.masks.map((_, i) => [`${t("mask")} ${i + 1}`, () => state.masks.splice(i, 1)]),
  ];
  $("list").replaceChildren(
    ...items.map(([label, remove]) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.textContent = "×";
      button.onclick = () => { remove(); render(); };
      li.append(`${label} `, button);
      return li;
    }),
  );
}

function say(text, ok = false) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "";
}

function take(body) {
  Object.assign(state, { zones: body.zones, masks: body.masks, source: body.source, open: [] });
  render();
}

async function send(method, body) {
  const response = await fetch(URL_REGIONS, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) return say(`${response.status}: ${text.trim()}`);
  take(JSON.parse(text));
  say(t(method === "PUT" ? "regions_saved" : "regions_reset"), true);
}

async function load() {
  $("picture").src = `/api/cameras/${encodeURIComponent(CAMERA)}/picture?at=${Date.now()}`;
  const response = await fetch(URL_REGIONS, { cache: "no-store" });
  if (!response.ok) return say(`${response.status}: ${(await response.text()).trim()}`);
  take(await response.json());
}

$("picture").onerror = () => say(t("no_picture"));
$("stage").addEventListener("click", addPoint);
$("finish").onclick = finish;
$("undo").onclick = () => { state.open.pop(); render(); };
$("save").onclick = () => send("PUT", { zones: state.zones, masks: state.masks });
$("reset").onclick = () => send("DELETE");
addEventListener("langchange", render);
apply();

window.regions = { state, ready: load() };
