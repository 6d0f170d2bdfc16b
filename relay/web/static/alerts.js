// The alert bus on the walls: lookouts (布控) as banners with their photo, alarms
// as a highlighted tile and a chime, and the station's alarm queue with its
// acknowledge / assign / resolve buttons. Built on events.js.

import { chime } from "/static/events.js";
import { clockTime, t } from "/static/i18n.js";

const OPEN = new Set(["open", "acked", "assigned"]);

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

// Active lookouts, newest first; each leaves when it expires or is dismissed here.
export class LookoutBoard {
  constructor(container) {
    this.container = container;
    this.lookouts = new Map();
    this.dismissed = new Set(JSON.parse(sessionStorage.getItem("vw-dismissed") || "[]"));
    setInterval(() => this.render(), 30000); // expiry
  }

  add(event, { sound = false } = {}) {
    if (event.type !== "lookout" || this.dismissed.has(event.id)) return;
    this.lookouts.set(event.id, event);
    if (sound) chime();
    this.render();
  }

  dismiss(id) {
    this.dismissed.add(id);
    sessionStorage.setItem("vw-dismissed", JSON.stringify([...this.dismissed].slice(-200)));
    this.render();
  }

  render() {
    const now = Date.now() / 1000;
    const active = [...this.lookouts.values()]
      .filter((e) => !(e.data.expires < now) && !this.dismissed.has(e.id))
      .sort((a, b) => b.time - a.time);
    this.container.replaceChildren(...active.map((e) => this._banner(e)));
    this.container.hidden = active.length === 0;
  }

  _banner(event) {
    const banner = element("div", "lookout");
    banner.dataset.id = event.id;
    if (event.image) {
      const photo = banner.appendChild(element("img", "photo"));
      photo.src = event.image;
      photo.alt = "";
    }
    const body = banner.appendChild(element("div", "body"));
    body.append(element("strong", "", t("lookout")), " ", element("span", "text", event.data.text));
    const expires = event.data.expires ? t("until", { time: clockTime(event.data.expires) }) : "";
    body.append(element("div", "meta", `${event.by} · ${clockTime(event.time)} ${expires}`));
    const close = banner.appendChild(element("button", "dismiss", "×"));
    close.title = t("dismiss");
    close.addEventListener("click", () => this.dismiss(event.id));
    return banner;
  }
}

// The station's queue: alarms not yet resolved, newest first, with their workflow.
export class AlarmQueue {
  constructor(list, feed, { canAct, cameraName, onShow }) {
    this.list = list;
    this.feed = feed;
    this.canAct = canAct;
    this.cameraName = cameraName;
    this.onShow = onShow;
    this.alarms = new Map();
  }

  load(events) {
    for (const e of events) if (e.type === "alarm" && OPEN.has(e.state)) this.alarms.set(e.id, e);
    this.render();
  }

  onEvent(event) {
    if (event.type === "alarm") {
      this.alarms.set(event.id, event);
      chime();
    } else if (this.alarms.has(event.ref) && ["ack", "assign", "resolve"].includes(event.type)) {
      // Steps can arrive out of order across nodes: the later one (by time, then id)
      // decides, as on every node (relay/bus/store.py), and a resolve ends the alarm.
      const alarm = this.alarms.get(event.ref);
      const last = alarm.last;
      const later = !last || event.time > last.time || (event.time === last.time && event.id > last.id);
      if (event.type !== "resolve" && !later) return;
      alarm.state = { ack: "acked", assign: "assigned", resolve: "resolved" }[event.type];
      alarm.last = event;
      if (alarm.state === "resolved") this.alarms.delete(event.ref);
    } else {
      return;
    }
    this.render();
  }

  render() {
    const alarms = [...this.alarms.values()].sort((a, b) => b.time - a.time);
    const items = alarms.map((a) => this._item(a));
    if (!items.length) items.push(element("li", "none", t("no_alarms")));
    this.list.replaceChildren(...items);
  }

  _item(alarm) {
    const li = element("li", `alarm ${alarm.state}`);
    li.dataset.id = alarm.id;
    const head = li.appendChild(element("div", "head"));
    const camera = head.appendChild(element("a", "camera", this.cameraName(alarm.camera)));
    camera.href = "#";
    camera.addEventListener("click", (event) => {
      event.preventDefault();
      this.onShow(alarm.camera);
    });
    head.append(element("span", "state", t(`alarm_${alarm.state}`)));
    li.append(element("div", "reason", alarm.data.reason || "—"));
    const who = alarm.last ? ` · ${t(alarm.last.type)} ${alarm.last.by}` : "";
    li.append(element("div", "meta", `${alarm.by} · ${clockTime(alarm.time)}${who}`));
    if (alarm.image) {
      const link = li.appendChild(element("a", "snapshot", t("snapshot")));
      link.href = alarm.image;
      link.target = "_blank";
    }
    if (alarm.camera) { // the alarm's clip: its recording from 10 s before it
      const clip = li.appendChild(element("a", "clip", "回放 clip"));
      clip.href = `/playback?camera=${encodeURIComponent(alarm.camera)}&at=${(alarm.time - 10).toFixed(3)}`;
      clip.target = "_blank";
    }
    if (this.canAct) {
      const actions = li.appendChild(element("div", "actions"));
      for (const step of ["ack", "assign", "resolve"]) {
        const button = actions.appendChild(element("button", step, t(step)));
        button.disabled = step === "ack" && alarm.state !== "open";
        button.addEventListener("click", () => this.act(alarm, step));
      }
    }
    return li;
  }

  async act(alarm, step) {
    const body = { type: step, ref: alarm.id };
    if (step === "assign") {
      const team = prompt(t("team"));
      if (!team) return;
      body.team = team;
    } else if (step === "resolve") {
      const note = prompt(t("note"));
      if (note === null) return;
      body.note = note;
    }
    try {
      await this.feed.publish(body);
    } catch (error) {
      alert(t("not_sent", { error: error.message }));
    }
  }
}
