// A tile looking back: its video plays the camera's recording with the playback
// page's own player (recorded.js), under a "playback" badge with the recorded
// time, until "live" gives the tile back to WebRTC. The menu offers 1 and 5
// minutes back and a time of day (the last such time: today, or yesterday).
// Their labels follow the page's language as it switches.

import { clockTime, t } from "/static/i18n.js";
import { Track, dayStart } from "/static/recorded.js";

const TICK_MS = 250;

export class TilePlayback {
  constructor(tile, at) {
    this.tile = tile;
    this.video = tile.video;
    this.badge = element("div", "playback-badge");
    this.badge.append(labelled(element("strong", ""), "playback_badge"), " ");
    this.time = this.badge.appendChild(element("span", "recorded", clockTime(at)));
    this.badge.append(element("span", "note"));
    tile.el.append(this.badge);
    this.track = new Track(tile.camera.id, dayStart(at), tile.el);
    this.at = at;
    this.frames = 0;
  }

  async start() {
    await this.track.open();
    await this.track.seek(this.at);
    await this.video.play().catch(() => {});
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  tick() {
    this.track.pump().catch((error) => { this.track.note.textContent = error.message; });
    const wall = this.track.wall();
    this.time.textContent = clockTime(wall);
    this.tile.el.dataset.recorded = wall.toFixed(3);
    const frames = this.track.frames();
    if (frames > this.frames) [this.frames, this.tile.decodedAt] = [frames, performance.now()];
  }

  stop() {
    clearInterval(this.timer);
    this.track.generation++; // late appends of this track quit
    this.track.close();
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.load();
    this.badge.remove();
    delete this.tile.el.dataset.recorded;
  }
}

// The look-back menu of a tile: pick a moment, then `choose(at)`.
export function lookBackMenu(choose) {
  const menu = element("div", "lookback-menu");
  menu.hidden = true;
  for (const minutes of [1, 5]) {
    const button = menu.appendChild(labelled(element("button", `back${minutes}`), `look_back_${minutes}`));
    button.addEventListener("click", () => choose(Date.now() / 1000 - minutes * 60));
  }
  const time = menu.appendChild(element("input", "at"));
  Object.assign(time, { type: "time", step: 1 });
  const go = menu.appendChild(labelled(element("button", "go"), "look_back_go"));
  go.addEventListener("click", () => time.valueAsNumber >= 0 && choose(lastTimeOfDay(time.valueAsNumber / 1000)));
  menu.addEventListener("dblclick", (event) => event.stopPropagation());
  return menu;
}

// `el` showing the label `key`, now and after every switch of language (apply()
// relabels every data-i18n element of the page).
function labelled(el, key) {
  el.dataset.i18n = key;
  el.textContent = t(key);
  return el;
}

// The last moment that showed this local time of day (seconds after midnight).
function lastTimeOfDay(seconds) {
  const now = Date.now() / 1000;
  const at = dayStart(now) + seconds;
  return at <= now ? at : dayStart(now - 86400) + seconds;
}

function element(tag, className, text = "") {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text) el.textContent = text;
  return el;
}
