// The village video wall: the wall's layout from the node's config, sub-streams
// in the tiles, a tour through the pages when the wall has more cameras than
// tiles, double-click for the main stream. `?kiosk=1` for an unattended screen:
// no chrome, and it reloads itself when the page fails or stops showing video.

import { AlarmStrip } from "/static/alarms.js";
import { LookoutBoard, reportSighting } from "/static/alerts.js";
import { EventFeed } from "/static/events.js";
import { apply, t } from "/static/i18n.js";
import { mayRaise } from "/static/raise.js";
import { Tile, arrange, cameraInfo, focus } from "/static/tiles.js";

const params = new URLSearchParams(location.search);
const KIOSK = params.get("kiosk") === "1";
const POLL_MS = 2000;
const WATCHDOG_MS = (Number(params.get("watchdog")) || 120) * 1000; // no frame anywhere this long
const WALL_URL = `/api/walls/${encodeURIComponent(document.body.dataset.wall)}`;

const grid = document.getElementById("grid");
const tiles = [];
const state = { wall: null, cameras: [], page: 0, paused: false, enlarged: null };
let tourTimer = null;
let strip = null; // the alarm strip and the lookout banners, made below with the feed
let lookouts = null;
let leaving = false;
let watchingSince = performance.now(); // the watchdog counts from here (load, tab shown)

function pages() {
  return tiles.length ? Math.max(1, Math.ceil(state.cameras.length / tiles.length)) : 1;
}

// A page is filled: when the cameras run out on the last page, it goes on with
// the first ones again (6 cameras on 4 tiles: 1-4, then 5, 6, 1, 2).
function showPage(page) {
  restore();
  state.page = ((page % pages()) + pages()) % pages();
  const first = state.page * tiles.length;
  const count = state.cameras.length;
  const wrap = count > tiles.length;
  tiles.forEach((tile, i) => {
    const index = wrap ? (first + i) % count : first + i;
    tile.assign(state.cameras[index] || null);
  });
  markAlarms();
  renderBar();
  scheduleTour();
}

// The tour stands still while the operator paused it, a tile looks back, or an
// alarm of this wall is open.
function held() {
  if (tiles.some((tile) => tile.lookback)) return true; // an operator is looking back
  return Boolean(strip?.openOn(new Set(state.cameras.map((c) => c.id))));
}

function scheduleTour() {
  clearTimeout(tourTimer);
  tourTimer = null;
  if (pages() > 1 && !state.paused && !held() && !state.enlarged && state.wall) {
    tourTimer = setTimeout(() => showPage(state.page + 1), state.wall.dwell * 1000);
  }
}

function setPaused(paused) {
  state.paused = paused;
  renderBar();
  scheduleTour();
}

function enlarge(tile) {
  if (state.enlarged === tile) return restore();
  if (state.enlarged) focus(grid, state.enlarged, false);
  state.enlarged = tile;
  focus(grid, tile, true);
  scheduleTour();
}

function restore() {
  if (!state.enlarged) return;
  focus(grid, state.enlarged, false);
  state.enlarged = null;
  scheduleTour();
}

function renderBar() {
  document.getElementById("page").textContent = t("page", { page: state.page + 1, pages: pages() });
  document.getElementById("pause").textContent = t(state.paused ? "resume" : "pause");
  const paused = pages() > 1 && (state.paused || held());
  document.getElementById("tour-state").textContent = !paused
    ? ""
    : state.paused
      ? t("tour_paused")
      : t("tour_held");
  document.body.dataset.tour = pages() < 2 ? "single" : paused ? "paused" : "running";
  for (const id of ["previous", "next", "pause"]) {
    document.getElementById(id).disabled = pages() < 2;
  }
}

function toLogin() {
  if (leaving) return;
  leaving = true;
  location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
}

// The wall and its cameras' states, every few seconds.
async function poll() {
  const problem = document.getElementById("problem");
  let wall;
  try {
    const response = await fetch(WALL_URL, { cache: "no-store" });
    if (response.status === 401) return toLogin();
    if (!response.ok) throw new Error(`${response.status} ${(await response.text()).trim()}`);
    wall = await response.json();
  } catch (error) {
    problem.textContent = `⚠ ${error.message}`; // the node restarts, the network fails...
    return;
  }
  problem.textContent = "";
  const cameras = wall.cameras.map(cameraInfo);
  const changed = cameras.map((c) => c.id).join() !== state.cameras.map((c) => c.id).join();
  const first = !state.wall;
  state.wall = wall;
  state.cameras = cameras;
  if (first) arrange(grid, wall.layout, tiles, makeTile);
  document.body.style.setProperty("--font-scale", wall.font_scale || 1);
  if (first || changed) return showPage(first ? 0 : state.page);
  const byId = new Map(cameras.map((c) => [c.id, c]));
  for (const tile of tiles) if (tile.camera) tile.update(byId.get(tile.camera.id) || tile.camera);
}

function makeTile() {
  return new Tile(grid, {
    onEnlarge: enlarge,
    onUnauthorized: toLogin,
    lookBack: true,
    actions: [
      {
        className: "sighting",
        label: "report_sighting",
        shown: () => mayRaise() && Boolean(lookouts?.active().length),
        run: (tile) => reportSighting(feed, lookouts.active(), state.cameras, { camera: tile.camera.id }),
      },
    ],
  });
}

async function tick() {
  try {
    await poll();
    await Promise.all(tiles.map((tile) => tile.check()));
    if (KIOSK) watchdog();
  } finally {
    setTimeout(tick, POLL_MS); // one timer at a time, however slow a round is
  }
}

// Kiosk: when cameras are online and on screen but no tile has shown a new frame
// for a long time, the page is broken in a way it cannot see: start it afresh.
function watchdog() {
  const now = performance.now();
  const expected = tiles.some((tile) => tile.inView && tile.camera?.state === "online");
  const lastFrame = Math.max(watchingSince, ...tiles.map((tile) => tile.decodedAt));
  if (document.visibilityState === "visible" && expected && now - lastFrame > WATCHDOG_MS) {
    reloadSoon("no video decoded for " + Math.round((now - lastFrame) / 1000) + " s");
  }
}

// Reloads back off when they repeat (a page that fails at once must not spin).
function reloadSoon(why) {
  if (leaving) return;
  leaving = true;
  const recent = JSON.parse(sessionStorage.getItem("vw-reloads") || "[]").filter(
    (at) => Date.now() - at < 10 * 60 * 1000,
  );
  const delay = Math.min(60000, 2000 * 2 ** recent.length);
  sessionStorage.setItem("vw-reloads", JSON.stringify([...recent, Date.now()]));
  console.warn(`wall: reloading in ${delay} ms: ${why}`);
  setTimeout(() => location.reload(), delay);
}

function kiosk() {
  document.body.classList.add("kiosk");
  addEventListener("error", (event) => reloadSoon(event.message));
  addEventListener("unhandledrejection", (event) => reloadSoon(String(event.reason)));
  // Browsers allow full screen only after a gesture; `chromium --kiosk` needs none.
  addEventListener("pointerdown", () => {
    if (!document.fullscreenElement) document.documentElement.requestFullscreen?.().catch(() => {});
  });
  let still = null;
  addEventListener("pointermove", () => {
    document.body.classList.remove("still");
    clearTimeout(still);
    still = setTimeout(() => document.body.classList.add("still"), 3000);
  });
}

function keys(event) {
  if (event.target.closest?.("dialog, input, button, select")) return; // theirs to handle
  if (event.key === " ") setPaused(!state.paused);
  else if (event.key === "ArrowRight") showPage(state.page + 1);
  else if (event.key === "ArrowLeft") showPage(state.page - 1);
  else if (event.key === "Escape") restore();
  else return;
  event.preventDefault();
}

grid.addEventListener("lookback", () => {
  renderBar();
  scheduleTour();
});
document.getElementById("pause").addEventListener("click", () => setPaused(!state.paused));
document.getElementById("next").addEventListener("click", () => showPage(state.page + 1));
document.getElementById("previous").addEventListener("click", () => showPage(state.page - 1));
addEventListener("keydown", keys);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") watchingSince = performance.now();
});
addEventListener("langchange", () => {
  renderBar();
  tiles.forEach((tile) => tile.render());
  strip.render();
  lookouts.render();
});
if (KIOSK) kiosk();
apply();
renderBar();

// The alert bus: lookouts as banners; every open alarm of this wall's cameras is in
// the strip with its state as the station works it (also after a reload); the
// newest brings its page up and its tile pulses; the tour holds while one is open.
const feed = new EventFeed();
lookouts = new LookoutBoard(document.getElementById("lookouts"), {
  canReport: mayRaise,
  onSighting: (lookout) => reportSighting(feed, [lookout], state.cameras, {}),
  onChange: () => tiles.forEach((tile) => tile.render()),
});
strip = new AlarmStrip(document.getElementById("alarm-strip"), {
  cameraName: (id) => state.cameras.find((c) => c.id === id)?.name || id,
  mine: (alarm) => state.cameras.some((c) => c.id === alarm.camera),
  onChange: () => {
    markAlarms();
    renderBar();
    scheduleTour();
  },
});

// A tile pulses while its camera has an alarm open.
function markAlarms() {
  const alarming = new Set(strip.open().map((a) => a.camera));
  for (const tile of tiles) tile.el.classList.toggle("alarming", alarming.has(tile.camera?.id));
}

function popAlarm(alarm) {
  const index = state.cameras.findIndex((c) => c.id === alarm.camera);
  if (index < 0 || !tiles.length) return;
  const shown = tiles.some((tile) => tile.camera?.id === alarm.camera);
  if (!shown) showPage(Math.floor(index / tiles.length));
  markAlarms();
}

feed.addEventListener("event", ({ detail }) => {
  lookouts.onEvent(detail, { sound: true });
  if (strip.onEvent(detail) && detail.type === "alarm") popAlarm(detail);
});
feed.addEventListener("connected", () => strip.reload());
addEventListener("vw-roles", () => lookouts.render());
const firstPoll = poll();
const recent = feed.start().then(async (events) => {
  await lookouts.load();
  await strip.reload();
  await firstPoll;
  const newest = strip.open()[0];
  if (newest) popAlarm(newest);
  return events;
});

// For people at the keyboard and for tests.
window.wall = {
  tiles,
  state,
  get page() {
    return state.page;
  },
  get pages() {
    return pages();
  },
  pause: () => setPaused(true),
  resume: () => setPaused(false),
  next: () => showPage(state.page + 1),
  enlarge: (i) => enlarge(tiles[i]),
  restore,
  feed,
  lookouts,
  strip,
  held,
  ready: Promise.all([firstPoll, recent]),
};
setTimeout(tick, POLL_MS);
