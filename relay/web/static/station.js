// The station viewer: the site tree (station -> villages -> cameras) with live
// online/offline counts, a grid the officer fills by clicking or dragging
// cameras, named layouts kept on the node, and the cameras offline right now.

import { reportSighting } from "/static/alerts.js";
import { apply, cameraError, clockTime, reason, t } from "/static/i18n.js";
import { stationAlerts } from "/static/station-alerts.js";
import { mayRaise } from "/static/raise.js";
import { LAYOUT_NAMES, Tile, arrange, cameraInfo, focus, toast } from "/static/tiles.js";

const POLL_MS = 3000;
const STORE_KEY = "vw-station-grid";
const $ = (id) => document.getElementById(id);
const make = (tag, props = {}) => Object.assign(document.createElement(tag), props);

const grid = $("grid");
const tiles = [];
const state = {
  sites: [],
  siteNames: new Map(),
  cameras: new Map(), // id -> cameraInfo, in the API's order
  slots: [], // camera id (or null) per tile
  layout: "2x2",
  selected: null, // the tile a click on a camera fills
  enlarged: null,
  saved: [],
  treeKey: "",
};
let leaving = false;

// --- the grid --------------------------------------------------------------------

function setLayout(layout) {
  state.layout = LAYOUT_NAMES.includes(layout) ? layout : "2x2";
  $("layout").value = state.layout;
  restore();
  arrange(grid, state.layout, tiles, makeTile);
  fill();
}

function fill() {
  tiles.forEach((tile, i) => {
    tile.assign(state.cameras.get(state.slots[i]) || null);
    tile.el.classList.toggle("selected", state.selected === i);
  });
  localStorage.setItem(STORE_KEY, JSON.stringify({ layout: state.layout, slots: state.slots }));
}

function place(cameraId, index = null) {
  if (index === null) index = state.selected;
  if (index === null) index = tiles.findIndex((_, i) => !state.slots[i]);
  if (index < 0) index = 0;
  const old = state.slots.indexOf(cameraId);
  if (old >= 0) state.slots[old] = null; // a camera shows in one tile at most
  state.slots[index] = cameraId;
  state.selected = null;
  fill();
}

function makeTile() {
  const tile = new Tile(grid, {
    onEnlarge: enlarge,
    onRemove: remove,
    onUnauthorized: toLogin,
    emptyLabel: "drop_hint",
    actions: [
      {
        className: "sighting",
        label: "report_sighting",
        shown: () => mayRaise() && Boolean(alerts?.lookouts.active().length),
        run: (x) =>
          reportSighting(alerts.feed, alerts.lookouts.active(), [...state.cameras.values()], { camera: x.camera.id }),
      },
    ],
  });
  tile.el.addEventListener("click", (event) => {
    if (event.target.closest("button")) return;
    const i = tiles.indexOf(tile);
    state.selected = state.selected === i ? null : i;
    fill();
  });
  tile.el.addEventListener("dragover", (event) => {
    event.preventDefault();
    tile.el.classList.add("drop");
  });
  tile.el.addEventListener("dragleave", () => tile.el.classList.remove("drop"));
  tile.el.addEventListener("drop", (event) => {
    event.preventDefault();
    tile.el.classList.remove("drop");
    const id = event.dataTransfer.getData("text/plain");
    if (state.cameras.has(id)) place(id, tiles.indexOf(tile));
  });
  return tile;
}

function remove(tile) {
  state.slots[tiles.indexOf(tile)] = null;
  fill();
}

function enlarge(tile) {
  const again = state.enlarged === tile;
  restore();
  if (again) return;
  state.enlarged = tile;
  focus(grid, tile, true);
}

function restore() {
  if (state.enlarged) focus(grid, state.enlarged, false);
  state.enlarged = null;
}

// --- the site tree -----------------------------------------------------------

function matches(text, query) {
  return text.toLowerCase().includes(query);
}

function buildTree() {
  const query = $("search").value.trim().toLowerCase();
  const bySite = new Map();
  for (const camera of state.cameras.values()) {
    if (!bySite.has(camera.site)) bySite.set(camera.site, []);
    bySite.get(camera.site).push(camera);
  }
  // A site shows when it, or anything below it, matches; all of a matching site shows.
  const build = (site, shown) => {
    const whole = shown || !query || matches(site.name, query);
    const kids = site.children.map((kid) => build(kid, whole)).filter(Boolean);
    const cameras = (bySite.get(site.id) || []).filter(
      (c) => whole || matches(c.name, query) || matches(c.id, query),
    );
    if (!whole && !kids.length && !cameras.length) return null;
    const li = make("li", { className: "site" });
    li.dataset.site = site.id;
    const row = li.appendChild(make("div", { className: "site-row" }));
    row.append(make("span", { className: "site-name", textContent: site.name }));
    row.append(make("span", { className: "counts" }));
    const ul = li.appendChild(make("ul"));
    ul.append(...kids, ...cameras.map(cameraItem));
    return li;
  };
  $("tree").replaceChildren(...state.sites.map((site) => build(site, false)).filter(Boolean));
  updateTree();
}

function cameraItem(camera) {
  const li = make("li", { className: "camera", draggable: true, textContent: camera.name, tabIndex: 0 });
  li.dataset.camera = camera.id;
  li.addEventListener("click", () => place(camera.id));
  li.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault();
    place(camera.id);
  });
  li.addEventListener("dragstart", (event) => event.dataTransfer.setData("text/plain", camera.id));
  return li;
}

// Counts and states change every poll; the tree's shape only with the search.
function updateTree() {
  const counts = new Map();
  const walk = (site) => {
    counts.set(site.id, site);
    site.children.forEach(walk);
  };
  state.sites.forEach(walk);
  for (const li of $("tree").querySelectorAll("li.site")) {
    const site = counts.get(li.dataset.site);
    const el = li.querySelector(":scope > .site-row > .counts");
    const { cameras, online, offline } = site;
    Object.assign(el.dataset, { cameras, online, offline });
    el.textContent = t("counts", site);
    el.classList.toggle("off", site.offline > 0);
  }
  for (const li of $("tree").querySelectorAll("li.camera")) {
    const camera = state.cameras.get(li.dataset.camera);
    li.className = `camera ${camera.state}`;
    const why = camera.lastError && camera.state !== "online" ? cameraError(camera.lastError) : "";
    li.title = [heldBy(camera), why].filter(Boolean).join(" · ");
  }
}

// A peer node's camera (its id is PEER.CAMERA) says which node holds it.
function heldBy(camera) {
  return camera.id.includes(".") && camera.node ? camera.node : "";
}

// --- camera health: what is down now, longest first ----------------------------

function renderHealth() {
  const down = [...state.cameras.values()]
    .filter((c) => c.state === "offline" || c.state === "stalled")
    .map((c) => ({ ...c, since: c.lastSeen || c.stateSince }))
    .sort((a, b) => a.since - b.since);
  $("health-count").textContent = down.length;
  const items = down.map((c) => {
    const li = make("li");
    li.dataset.camera = c.id;
    const since = `${t(c.state)} · ${t("since", { time: clockTime(c.since) })}`;
    li.append(
      [c.name, state.siteNames.get(c.site) || c.site, heldBy(c)].filter(Boolean).join(" · "),
      make("div", { className: "since", textContent: since }),
      make("div", { className: "why", textContent: c.lastError ? cameraError(c.lastError) : "" }),
    );
    return li;
  });
  if (!items.length) items.push(make("li", { textContent: t("health_none") }));
  $("health").replaceChildren(...items);
}

// --- polling -----------------------------------------------------------------

function toLogin() {
  if (leaving) return;
  leaving = true;
  location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (response.status === 401) {
    toLogin();
    throw new Error("logged out");
  }
  if (!response.ok) throw new Error(reason(response.status, (await response.text()).trim()));
  return response.json();
}

async function poll() {
  const [sites, cameras] = await Promise.all([getJson("/api/sites"), getJson("/api/cameras")]);
  state.sites = sites;
  const names = new Map();
  const walk = (site) => {
    names.set(site.id, site.name);
    site.children.forEach(walk);
  };
  sites.forEach(walk);
  state.siteNames = names;
  state.cameras = new Map(cameras.map((c) => [c.id, cameraInfo(c)]));
  const shape = (site) => [site.id, site.children.map(shape)];
  const key = JSON.stringify([sites.map(shape), [...state.cameras.keys()]]);
  if (key !== state.treeKey) {
    state.treeKey = key;
    buildTree();
  } else {
    updateTree();
  }
  for (const tile of tiles) {
    const fresh = tile.camera && state.cameras.get(tile.camera.id);
    if (fresh) tile.update(fresh);
  }
  renderHealth();
}

async function tick() {
  try {
    await poll();
    await Promise.all(tiles.map((tile) => tile.check()));
  } catch (error) {
    console.warn("station:", error.message);
  } finally {
    setTimeout(tick, POLL_MS);
  }
}

// --- saved layouts -----------------------------------------------------------

async function loadSaved() {
  state.saved = await getJson("/api/layouts");
  const select = $("saved");
  const groups = [
    ["mine", state.saved.filter((l) => l.mine)],
    ["shared", state.saved.filter((l) => !l.mine)],
  ];
  select.replaceChildren(
    ...groups.filter(([, list]) => list.length).map(([label, list]) => {
      const group = document.createElement("optgroup");
      group.label = t(label);
      for (const layout of list) {
        const mark = layout.shared ? ` (${t("shared")})` : "";
        const suffix = layout.mine ? mark : ` · ${layout.owner}`;
        group.append(new Option(`${layout.name} [${layout.layout}]${suffix}`, layout.id));
      }
      return group;
    }),
  );
  enableSavedButtons();
}

function enableSavedButtons() {
  $("load").disabled = !chosen();
  $("delete").disabled = !chosen()?.can_delete;
}

function chosen() {
  return state.saved.find((l) => String(l.id) === $("saved").value);
}

async function send(method, url, body) {
  const options = { method, headers: { "Content-Type": "application/json" } };
  if (body) options.body = JSON.stringify(body);
  const response = await fetch(url, options);
  const text = (await response.text()).trim();
  if (response.status === 401) toLogin();
  return { ok: response.ok, status: response.status, text };
}

async function save() {
  const body = {
    name: $("layout-name").value,
    layout: state.layout,
    cameras: tiles.map((_, i) => (state.cameras.has(state.slots[i]) ? state.slots[i] : null)),
    shared: $("shared").checked,
  };
  const answer = await send("POST", "/api/layouts", body);
  toast(answer.ok ? t("saved_ok") : reason(answer.status, answer.text), answer.ok ? "ok" : "error");
  if (answer.ok) await loadSaved();
}

async function deleteChosen() {
  const layout = chosen();
  if (!layout) return;
  const answer = await send("DELETE", `/api/layouts/${layout.id}`);
  toast(answer.ok ? t("deleted_ok") : reason(answer.status, answer.text), answer.ok ? "ok" : "error");
  await loadSaved();
}

function openChosen() {
  const layout = chosen();
  if (!layout) return;
  state.slots = [...layout.cameras];
  state.selected = null;
  $("layout-name").value = layout.name;
  $("shared").checked = layout.shared;
  setLayout(layout.layout);
}

// --- start -------------------------------------------------------------------

$("layout").replaceChildren(...LAYOUT_NAMES.map((name) => new Option(name, name)));
$("layout").addEventListener("change", (event) => setLayout(event.target.value));
$("search").addEventListener("input", buildTree);
$("save").addEventListener("click", save);
$("load").addEventListener("click", openChosen);
$("saved").addEventListener("change", enableSavedButtons);
$("delete").addEventListener("click", deleteChosen);
$("clear").addEventListener("click", () => {
  state.slots = [];
  fill();
});
$("sidebar-toggle").addEventListener("click", () => document.body.classList.toggle("no-sidebar"));
addEventListener("langchange", () => {
  updateTree();
  renderHealth();
  tiles.forEach((tile) => tile.render());
  loadSaved().catch(() => {});
});
addEventListener("keydown", (event) => event.key === "Escape" && restore());
apply();

const kept = JSON.parse(localStorage.getItem(STORE_KEY) || "{}");
state.slots = Array.isArray(kept.slots) ? kept.slots : [];

// --- the alert bus (station-alerts.js) ------------------------------------------

const alerts = stationAlerts({ state, tiles, place, toLogin });

window.station = {
  tiles,
  state,
  place,
  setLayout,
  feed: alerts.feed,
  lookouts: alerts.lookouts,
  get queue() {
    return alerts.queue;
  },
  showAlarm: alerts.showAlarm,
  get popupTile() {
    return alerts.popupTile;
  },
  alerts: null,
  ready: poll().then(() => {
    // From the overview's village card: the tree opens filtered to that village.
    const site = new URLSearchParams(location.hash.slice(1)).get("site");
    if (site && state.siteNames.has(site)) {
      $("search").value = state.siteNames.get(site);
      buildTree();
    }
    setLayout(kept.layout || "2x2");
    return loadSaved();
  }),
};
window.station.alerts = window.station.ready.then(alerts.start);
window.station.ready.finally(() => setTimeout(tick, POLL_MS));
