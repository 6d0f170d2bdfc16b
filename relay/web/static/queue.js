// The station's alarm queue: every alarm not yet resolved, newest first, with its
// type, team and notes; acknowledge, assign to one of the station's patrol teams
// (from the config), resolve with a note. Resolved alarms go to the history page.

import { formDialog, send, showPhoto } from "/static/alerts.js";
import { AlarmBook, element, kindText, stateText } from "/static/alarms.js";
import { AlarmClips } from "/static/clips.js";
import { clockTime, t } from "/static/i18n.js";

export class AlarmQueue {
  // recordedCamera(alarm): the id here of the alarm's camera if it is recorded (a
  // village's alarm names its camera as the village does), else null.
  constructor(list, feed, { canAct, cameraName, onShow, onNew = () => {}, recordedCamera = () => null }) {
    Object.assign(this, { list, feed, canAct, cameraName, onShow, onNew, recordedCamera });
    this.teams = [];
    this.book = new AlarmBook({ onChange: () => this.render() });
    this.clips = new AlarmClips({ onChange: () => this.render() });
  }

  async load() {
    const response = await fetch("/api/patrol-teams");
    if (response.ok) this.teams = await response.json();
    await this.book.reload();
  }

  get alarms() {
    return this.book.alarms;
  }

  onEvent(event) {
    if (this.book.onEvent(event) && event.type === "alarm") this.onNew(event);
  }

  render() {
    const items = this.book.list().map((a) => this._item(a));
    if (!items.length) items.push(element("li", "none", t("no_alarms")));
    this.list.replaceChildren(...items);
  }

  _item(alarm) {
    const li = element("li", `alarm ${alarm.state}`);
    li.dataset.id = alarm.id;
    const head = li.appendChild(element("div", "head"));
    const camera = head.appendChild(element("button", "camera link", this.cameraName(alarm.camera)));
    camera.title = t("show_camera");
    camera.addEventListener("click", () => this.onShow(alarm.camera, alarm));
    head.append(element("span", "state", stateText(alarm)));
    li.append(element("div", "reason", kindText(alarm) || "—"));
    li.append(element("div", "meta", `${alarm.by} · ${clockTime(alarm.time)}`));
    const notes = alarm.steps.filter((s) => s.data.note || s.type !== "ack");
    if (notes.length) {
      const steps = li.appendChild(element("ol", "steps"));
      for (const step of notes) {
        const team = step.type === "assign" ? ` ${step.data.team_name}` : "";
        const note = step.data.note ? `：${step.data.note}` : "";
        steps.append(element("li", step.type, `${clockTime(step.time)} ${t(step.type)}${team} · ${step.by}${note}`));
      }
    }
    if (alarm.image) {
      const link = li.appendChild(element("button", "snapshot link", t("snapshot")));
      link.addEventListener("click", () => showPhoto(alarm.image, kindText(alarm)));
    }
    const recorded = alarm.camera && this.recordedCamera(alarm);
    if (recorded) li.append(this.clips.controls(alarm, recorded));
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
      const field = this.teams.length
        ? { name: "team", label: t("team"), options: this.teams.map((x) => [x.id, x.name]) }
        : { name: "team", label: t("team"), required: true, maxLength: 100 };
      const values = await formDialog(t("assign_title", { camera: this.cameraName(alarm.camera) }), [
        field,
        { name: "note", label: t("note_optional"), type: "textarea", maxLength: 2000 },
      ]);
      if (!values) return;
      Object.assign(body, values);
    } else if (step === "resolve") {
      const values = await formDialog(t("resolve_title", { camera: this.cameraName(alarm.camera) }), [
        { name: "note", label: t("note"), type: "textarea", maxLength: 2000 },
      ]);
      if (!values) return;
      body.note = values.note;
    }
    await send(this.feed, body);
  }
}
