// Alarms as they are worked: raised at a wall, acknowledged and assigned at the
// station, accepted, reached and resolved by a patrol team. One model for every
// page: an alarm from GET /api/alarms (with its steps), kept current by the feed.
//   AlarmBook: the alarms a page follows, loaded and updated
//   AlarmStrip: the wall's strip, each alarm with its state in words
//   stateText(alarm): "已派警：巡逻二组", "处置完毕：…"

import { chime } from "/static/events.js";
import { clockTime, t } from "/static/i18n.js";

export const STEPS = { ack: "acked", assign: "assigned", accept: "accepted", arrive: "arrived", resolve: "resolved" };
export const KINDS = ["theft", "fire", "fight", "missing", "traffic", "other"];
const KEEP_RESOLVED_MS = 60000; // a resolved alarm stays in view this long, with its note

export function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function lastStep(alarm, type) {
  return [...(alarm.steps || [])].reverse().find((s) => s.type === type);
}

// The alarm's state in words, with who and what: the team, the note.
export function stateText(alarm) {
  const team = alarm.data.team_name || lastStep(alarm, "assign")?.data.team_name || "";
  const last = alarm.steps?.length ? alarm.steps[alarm.steps.length - 1] : null;
  const note = lastStep(alarm, "resolve")?.data.note || "";
  return t(`state_${alarm.state}`, { team, by: last?.by || "", note: note ? `：${note}` : "" });
}

export function kindText(alarm) {
  const kind = alarm.data.kind && alarm.data.kind !== "other" ? t(`kind_${alarm.data.kind}`) : "";
  return [kind, alarm.data.reason].filter(Boolean).join(" · ");
}

// The alarms a page follows. `accept(alarm)` says which; `onChange` after each change.
export class AlarmBook {
  constructor({ query = "?state=unresolved", accept = () => true, onChange = () => {} } = {}) {
    this.query = query;
    this.accept = accept;
    this.onChange = onChange;
    this.alarms = new Map();
    this.resolvedAt = new Map(); // id -> when it was resolved here
  }

  async reload() {
    const asked = performance.now();
    const response = await fetch(`/api/alarms${this.query}`, { cache: "no-store" });
    if (!response.ok) return;
    const fresh = await response.json();
    const ids = new Set(fresh.map((a) => a.id));
    // An alarm that came live while the list was on its way is newer than the list.
    for (const [id, alarm] of this.alarms) {
      if (!ids.has(id) && alarm.state !== "resolved" && !(alarm.cameLive >= asked)) this.alarms.delete(id);
    }
    for (const alarm of fresh) if (!(this.alarms.get(alarm.id)?.cameLive >= asked)) this.alarms.set(alarm.id, alarm);
    this.onChange();
  }

  // True when the event changed an alarm followed here.
  onEvent(event) {
    if (event.type === "alarm") {
      if (this.alarms.has(event.id) || !this.accept(event)) return false;
      this.alarms.set(event.id, { ...event, state: event.state || "open", steps: [], cameLive: performance.now() });
      chime();
    } else if (STEPS[event.type] && this.alarms.has(event.ref)) {
      const alarm = this.alarms.get(event.ref);
      if (alarm.steps.some((s) => s.id === event.id)) return false;
      alarm.steps.push(event);
      // Steps can arrive out of order across nodes: the latest (by time, then id)
      // decides, as on every node (relay/bus/store.py), and a resolve ends it.
      const later = (a, b) => a.time > b.time || (a.time === b.time && a.id > b.id);
      const last = alarm.last;
      if (alarm.state !== "resolved" && (event.type === "resolve" || !last || later(event, last))) {
        alarm.state = STEPS[event.type];
        alarm.last = event;
      }
      const assign = alarm.steps.filter((s) => s.type === "assign").reduce((a, b) => (!a || later(b, a) ? b : a), null);
      if (assign) Object.assign(alarm.data, { team: assign.data.team, team_name: assign.data.team_name });
      if (alarm.state === "resolved") {
        this.resolvedAt.set(alarm.id, Date.now());
        setTimeout(() => this._forget(alarm.id), KEEP_RESOLVED_MS);
      }
    } else {
      return false;
    }
    this.onChange();
    return true;
  }

  _forget(id) {
    if (this.alarms.get(id)?.state !== "resolved") return;
    this.alarms.delete(id);
    this.onChange();
  }

  // Newest first; `resolved`: also those resolved a moment ago.
  list({ resolved = false } = {}) {
    return [...this.alarms.values()]
      .filter((a) => this.accept(a) && (resolved || a.state !== "resolved"))
      .sort((a, b) => b.time - a.time);
  }
}

// The wall's strip: each of its cameras' alarms with its state, newest first.
export class AlarmStrip {
  constructor(container, { cameraName, mine, onChange }) {
    this.container = container;
    this.cameraName = cameraName;
    this.book = new AlarmBook({
      accept: mine,
      onChange: () => {
        this.render();
        onChange();
      },
    });
  }

  reload() {
    return this.book.reload();
  }

  onEvent(event) {
    return this.book.onEvent(event);
  }

  open() {
    return this.book.list();
  }

  openOn(cameraIds) {
    return this.open().some((a) => cameraIds.has(a.camera));
  }

  render() {
    const shown = this.book.list({ resolved: true });
    this.container.hidden = !shown.length;
    const items = shown.slice(0, 3).map((alarm) => {
      const item = element("div", `alarm-item ${alarm.state}`);
      item.dataset.id = alarm.id;
      item.dataset.state = alarm.state;
      const what = kindText(alarm);
      item.append(
        element("strong", "", t("alarm_on", { camera: this.cameraName(alarm.camera), reason: what ? ` — ${what}` : "" })),
        element("span", "time", ` ${clockTime(alarm.time)} `),
        element("span", "state", stateText(alarm)),
      );
      return item;
    });
    if (shown.length > 3) items.push(element("div", "more", t("more_alarms", { count: shown.length - 3 })));
    this.container.replaceChildren(...items);
  }
}
