// Video tiles for the wall and the station viewer: grid layouts, one WHEP player
// per tile that plays only while the tile can be seen, camera state overlays,
// the shared clock and the operator's alarm.
//
// A tile's player runs only while it has a camera, the tab is visible and the
// tile is on screen (IntersectionObserver): anything else ends the WHEP session,
// so a wall left open for days holds exactly the sessions it shows.

import { WhepPlayer } from "/static/whep-player.js";
import { cameraError, clockTime, t } from "/static/i18n.js";
import { mayPlayBack, mayRaise, openAlarm } from "/static/raise.js";
import { TilePlayback, lookBackMenu } from "/static/tile-playback.js";

// tiles: how many; big: the CSS grid area of the first, large tile.
export const LAYOUTS = {
  1: { cols: 1, rows: 1, tiles: 1 },
  "2x2": { cols: 2, rows: 2, tiles: 4 },
  "3x3": { cols: 3, rows: 3, tiles: 9 },
  "4x4": { cols: 4, rows: 4, tiles: 16 },
  "5x5": { cols: 5, rows: 5, tiles: 25 },
  "1+5": { cols: 3, rows: 3, tiles: 6, big: "1 / 1 / span 2 / span 2" },
  "1+7": { cols: 4, rows: 4, tiles: 8, big: "1 / 1 / span 3 / span 3" },
  "1+12": { cols: 4, rows: 4, tiles: 13, big: "2 / 2 / span 2 / span 2" },
};
export const LAYOUT_NAMES = ["1", "2x2", "3x3", "4x4", "5x5", "1+5", "1+7", "1+12"];

const DOWN = new Set(["offline", "stalled"]);
const TILE_STALL_MS = 8000; // playing but no new frame this long: a fresh session

// The camera fields a tile uses, from /api/cameras or /api/walls/{id}.
export function cameraInfo(json) {
  return {
    id: json.id,
    name: json.name,
    site: json.site,
    node: json.node, // the node that holds the camera (a peer's: PEER.CAMERA)
    state: json.state,
    lastError: json.last_error,
    lastSeen: json.last_seen,
    stateSince: json.state_since,
    hasSub: Boolean(json.streams && json.streams.sub),
    recorded: Boolean(json.recording && json.recording.mode !== "off"),
  };
}

const tilesOf = new WeakMap(); // tile element -> Tile
const visibility = new IntersectionObserver((entries) => {
  for (const entry of entries) tilesOf.get(entry.target)?.setInView(entry.isIntersecting);
});
const live = new Set(); // every tile on the page
document.addEventListener("visibilitychange", () => live.forEach((tile) => tile.sync()));
addEventListener("pagehide", () => live.forEach((tile) => {
  tile.stopPlayer();
  tile.lookback?.stop();
}));
addEventListener("vw-roles", () => live.forEach((tile) => tile.render()));
setInterval(() => {
  const now = clockTime(Date.now() / 1000);
  for (const tile of live) tile.clock.textContent = tile.camera ? now : "";
}, 1000);

export class Tile {
  // actions: more buttons, each {className, label (i18n key), shown(), run(tile)};
  // lookBack: the tile may switch to its camera's recording and back (the wall).
  constructor(grid, { onEnlarge, onRemove, onUnauthorized, emptyLabel = "empty", actions: extra = [], lookBack = false } = {}) {
    this.el = element("div", "tile");
    this.video = element("video", "");
    Object.assign(this.video, { autoplay: true, muted: true, playsInline: true });
    const top = element("div", "bar");
    this.name = top.appendChild(element("span", "name"));
    this.status = top.appendChild(element("span", "status"));
    this.clock = top.appendChild(element("span", "clock"));
    this.overlay = element("div", "overlay");
    this.overlayTitle = this.overlay.appendChild(element("div", "title"));
    this.overlayDetail = this.overlay.appendChild(element("div", "detail"));
    const actions = element("div", "actions");
    this.alarmButton = actions.appendChild(element("button", "alarm"));
    this.alarmButton.addEventListener("click", () => this.camera && openAlarm(this.camera));
    if (lookBack) extra = [...extra, ...this._lookBackActions()];
    this.more = extra.map((action) => {
      const button = element("button", action.className);
      button.addEventListener("click", () => this.camera && action.run(this));
      return { action, button };
    });
    for (const { button } of this.more) this.alarmButton.before(button);
    if (onRemove) {
      const remove = actions.appendChild(element("button", "remove"));
      remove.textContent = "×";
      remove.addEventListener("click", () => onRemove(this));
      this.removeButton = remove;
    }
    actions.addEventListener("dblclick", (event) => event.stopPropagation());
    this.el.append(this.video, top, this.overlay, actions);
    if (this.menu) this.el.append(this.menu);
    // A double tap may also fire dblclick: one toggle for both.
    this.el.addEventListener("dblclick", () => {
      if (performance.now() - this._tappedAt > 500) this._toggle(onEnlarge);
    });
    this.el.addEventListener("pointerup", (event) => this._tap(event, onEnlarge));
    // Keyboard: Tab reaches each tile, Enter enlarges it and back (its buttons follow).
    this.el.tabIndex = 0;
    this.el.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.target !== this.el) return;
      event.preventDefault();
      this._toggle(onEnlarge);
    });
    this.onUnauthorized = onUnauthorized;
    this.emptyLabel = emptyLabel;
    this.camera = null;
    this.stream = "sub";
    this.inView = false;
    this.player = null;
    this.playerUrl = null;
    this.lookback = null; // a TilePlayback while the tile shows the recording
    this.decodedAt = 0; // performance.now() when a new frame was last seen
    this._frames = 0;
    this._progressAt = 0;
    this._tapAt = -1e9;
    this._tappedAt = -1e9; // when a double tap last toggled
    this._onPlayerState = (event) => this._playerState(event.detail);
    grid.append(this.el);
    tilesOf.set(this.el, this);
    live.add(this);
    visibility.observe(this.el);
    this.render();
  }

  // A different camera (or none): the old one's session ends.
  assign(camera) {
    if (camera?.id !== this.camera?.id) {
      this.stopPlayer();
      this.live();
    }
    this.camera = camera;
    this.sync();
    this.render();
  }

  // New facts about the same camera (its state, last seen).
  update(camera) {
    const wasDown = DOWN.has(this.camera?.state);
    this.camera = camera;
    if (wasDown && !DOWN.has(camera.state)) this._progressAt = performance.now();
    this.render();
  }

  setStream(stream) {
    this.stream = stream;
    this.sync();
  }

  setInView(inView) {
    this.inView = inView;
    this.sync();
  }

  url() {
    const base = `/whep/${encodeURIComponent(this.camera.id)}`;
    return this.stream === "main" && this.camera.hasSub ? `${base}?stream=main` : base;
  }

  // Start, switch or stop the player to match what the tile should show.
  sync() {
    const want = this.camera && this.inView && document.visibilityState === "visible" && !this.lookback;
    if (!want) {
      this.stopPlayer();
    } else if (!this.player || this.playerUrl !== this.url()) {
      this.stopPlayer();
      this.playerUrl = this.url();
      this.player = new WhepPlayer(this.video, this.playerUrl);
      this.player.addEventListener("state", this._onPlayerState);
      this._frames = 0;
      this._progressAt = performance.now();
      this.player.start();
    }
    this.render();
  }

  stopPlayer() {
    const player = this.player;
    if (!player) return Promise.resolve();
    this.player = null;
    this.playerUrl = null;
    player.removeEventListener("state", this._onPlayerState);
    return player.stop();
  }

  // Play the camera's recording from `at` (Unix seconds) in this tile.
  async lookBack(at) {
    this.lookback?.stop();
    this.lookback = new TilePlayback(this, at);
    const playback = this.lookback;
    this.menu.hidden = true;
    await this.stopPlayer(); // the video element is free of WebRTC before MSE takes it
    this.render();
    this.el.dispatchEvent(new Event("lookback", { bubbles: true })); // the wall's tour holds
    if (playback === this.lookback) await playback.start();
  }

  // Back to live video.
  live() {
    if (!this.lookback) return;
    this.lookback.stop();
    this.lookback = null;
    this.sync();
    this.el.dispatchEvent(new Event("lookback", { bubbles: true }));
  }

  _lookBackActions() {
    this.menu = lookBackMenu((at) => this.lookBack(at).catch((e) => this._lookBackFailed(e)));
    const playing = () => Boolean(this.lookback);
    return [
      {
        className: "lookback",
        label: "look_back",
        shown: () => mayPlayBack() && !playing(),
        run: () => { this.menu.hidden = !this.menu.hidden; },
      },
      { className: "live", label: "back_live", shown: playing, run: () => this.live() },
    ];
  }

  _lookBackFailed(error) {
    const note = this.lookback?.track.note;
    if (note) note.textContent = error.message;
  }

  // Called every few seconds: note decoded frames, restart a player that froze.
  async check() {
    const player = this.player;
    if (!player) return;
    const stats = await player.stats().catch(() => null);
    const now = performance.now();
    if (player !== this.player) return;
    if (stats && stats.framesDecoded > this._frames) {
      this._frames = stats.framesDecoded;
      this._progressAt = this.decodedAt = now;
    } else if (this.camera?.state === "online" && now - this._progressAt > TILE_STALL_MS) {
      this.stopPlayer(); // the camera sends but this session shows nothing: start afresh
      this.sync();
    }
  }

  render() {
    const camera = this.camera;
    this.el.classList.toggle("empty", !camera);
    this.alarmButton.textContent = t("alarm");
    this.alarmButton.hidden = !camera || !mayRaise();
    for (const { action, button } of this.more) {
      button.textContent = t(action.label);
      button.hidden = !camera || !action.shown();
    }
    if (this.removeButton) this.removeButton.hidden = !camera;
    this.name.textContent = camera ? camera.name : "";
    if (!camera) this.clock.textContent = ""; // an empty tile shows no live-looking time
    this.el.title = camera ? t("enlarge_hint") : "";
    const down = camera && DOWN.has(camera.state);
    this.el.classList.toggle("down", Boolean(down));
    const player = this.lookback ? "playback" : this.player?.state || "idle";
    this.el.dataset.state = !camera ? "empty" : down ? camera.state : player;
    const playing = this.lookback ? "" : t(player);
    this.status.textContent = !camera ? "" : down ? t(camera.state) : playing;
    this.overlayTitle.textContent = !camera ? t(this.emptyLabel) : down ? t(camera.state) : "";
    let detail = "";
    if (down) {
      const seen = camera.lastSeen && clockTime(camera.lastSeen);
      detail = seen ? t("last_seen", { time: seen }) : t("never_seen");
      if (camera.lastError) detail += ` · ${cameraError(camera.lastError)}`;
    }
    this.overlayDetail.textContent = detail;
  }

  destroy() {
    this.stopPlayer();
    this.live();
    visibility.unobserve(this.el);
    live.delete(this);
    tilesOf.delete(this.el);
    this.el.remove();
  }

  _playerState({ state, status }) {
    if (status === 401 && this.onUnauthorized) this.onUnauthorized();
    if (state === "playing") this._progressAt = performance.now();
    this.render();
  }

  _toggle(onEnlarge) {
    if (onEnlarge && this.camera) onEnlarge(this);
  }

  _tap(event, onEnlarge) {
    if (event.pointerType !== "touch" || event.target.closest("button")) return;
    const now = performance.now();
    if (now - this._tapAt < 350) {
      this._tappedAt = now;
      this._tapAt = -1e9;
      this._toggle(onEnlarge);
    } else {
      this._tapAt = now;
    }
  }
}

// Make `tiles` match `layout` on `grid`: tiles are reused, added or destroyed.
// One tile over the whole grid on its main stream (on), or back in place (off).
export function focus(grid, tile, on) {
  grid.classList.toggle("enlarged", on);
  tile.el.classList.toggle("focused", on);
  tile.setStream(on ? "main" : "sub");
}

export function arrange(grid, layout, tiles, makeTile) {
  const spec = LAYOUTS[layout] || LAYOUTS["3x3"];
  grid.style.setProperty("--cols", spec.cols);
  grid.style.setProperty("--rows", spec.rows);
  grid.dataset.layout = layout;
  while (tiles.length > spec.tiles) tiles.pop().destroy();
  while (tiles.length < spec.tiles) tiles.push(makeTile());
  tiles.forEach((tile, i) => {
    const big = i === 0 && spec.big;
    tile.el.style.gridArea = big || "";
    tile.el.classList.toggle("major", Boolean(big));
  });
}

// Kept here too for pages that import them from tiles.js.
export { toast } from "/static/toast.js";
export { openAlarm, raiseAlarm } from "/static/raise.js";

function element(tag, className) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  return el;
}
