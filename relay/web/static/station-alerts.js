// The station's side of the alert bus: the alarm queue, a new alarm brought into
// view (pop-up live view beside its snapshot, or the chosen tile), the lookouts
// with their sightings, issuing a lookout. Made once by station.js with the grid's
// state and its place().

import { LookoutBoard, LookoutList, send as publish, shrinkPhoto } from "/static/alerts.js";
import { kindText } from "/static/alarms.js";
import { EventFeed } from "/static/events.js";
import { me } from "/static/header.js";
import { clockTime, t } from "/static/i18n.js";
import { AlarmQueue } from "/static/queue.js";
import { Tile } from "/static/tiles.js";

const $ = (id) => document.getElementById(id);

export function stationAlerts({ state, tiles, place, toLogin }) {
  const feed = new EventFeed();
  const lookouts = new LookoutBoard($("lookouts"), { onChange: () => tiles.forEach((x) => x.render()) });
  let queue = null;
  let lookoutList = null;
  const ON_ALARM_KEY = "vw-station-on-alarm";

  // A new alarm comes into view as the station chose: a pop-up live view beside the
  // snapshot (as iVMS/DSS clients do), the camera in the chosen tile, or the queue only.
  function onNewAlarm(alarm) {
    const mode = $("on-alarm").value;
    if (mode === "tile") place(alarm.camera);
    else if (mode === "popup") showAlarm(alarm);
  }

  let popupTile = null;

  function showAlarm(alarm) {
    const dialog = $("alarm-view");
    const camera = state.cameras.get(alarm.camera);
    if (!camera) return;
    $("alarm-view-title").textContent = t("alarm_title", { camera: camera.name });
    $("alarm-view-reason").textContent = `${kindText(alarm) || ""} · ${alarm.by} · ${clockTime(alarm.time)}`;
    const snapshot = $("alarm-view-snapshot");
    snapshot.hidden = !alarm.image;
    if (alarm.image) snapshot.src = alarm.image;
    snapshot.alt = t("snapshot");
    popupTile ??= new Tile($("alarm-view-live"), { onUnauthorized: toLogin });
    dialog.dataset.camera = alarm.camera;
    dialog.dataset.alarm = alarm.id;
    if (!dialog.open) dialog.showModal();
    popupTile.assign(camera);
  }

  $("alarm-view-close").addEventListener("click", () => $("alarm-view").close());
  $("alarm-view-place").addEventListener("click", () => {
    place($("alarm-view").dataset.camera);
    $("alarm-view").close();
  });
  $("alarm-view").addEventListener("close", () => popupTile?.assign(null));

  function setupOnAlarm(configured) {
    const select = $("on-alarm");
    select.replaceChildren(...["popup", "tile", "none"].map((m) => new Option(t(`on_alarm_${m}`), m)));
    select.value = localStorage.getItem(ON_ALARM_KEY) || configured || "popup";
    select.addEventListener("change", () => localStorage.setItem(ON_ALARM_KEY, select.value));
  }

  // An alarm's camera as this node knows it: its own, or a village's (the village
  // names it without the PEER. prefix), if that camera is recorded.
  function recordedCamera(alarm) {
    const id = [alarm.camera, `${alarm.origin}.${alarm.camera}`].find((x) => state.cameras.has(x));
    return id && state.cameras.get(id).recorded ? id : null;
  }

  async function startAlerts() {
    const who = await me();
    const canAct = who.role === "officer" || who.role === "admin";
    setupOnAlarm(who.on_alarm);
    const cameraName = (id) => state.cameras.get(id)?.name || id;
    queue = new AlarmQueue($("alarms"), feed, {
      canAct,
      cameraName,
      recordedCamera,
      onShow: (id, alarm) => ($("on-alarm").value === "popup" ? showAlarm(alarm) : place(id)),
      onNew: onNewAlarm,
    });
    lookoutList = new LookoutList($("lookout-list"), feed, { canCancel: canAct, cameraName });
    feed.addEventListener("event", ({ detail }) => {
      queue.onEvent(detail);
      lookouts.onEvent(detail, { sound: true });
      lookoutList.onEvent(detail);
    });
    feed.addEventListener("connected", () => queue.book.reload());
    await feed.start();
    await Promise.all([queue.load(), lookouts.load(), lookoutList.reload()]);
    $("issue").hidden = !canAct;
  }

  // A refused lookout keeps what was typed: the dialog opens again as it was, and
  // is emptied only once the lookout is issued. A phone photo is shrunk here first.
  async function issueLookout() {
    const dialog = $("lookout-dialog");
    const form = dialog.querySelector("form");
    const area = form.area.value;
    form.area.replaceChildren(
      new Option(t("whole_network"), ""),
      ...[...state.siteNames].map(([id, name]) => new Option(name, id)),
    );
    form.area.value = area;
    dialog.showModal();
    await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
    if (dialog.returnValue !== "send" || !form.text.value.trim()) return;
    const body = {
      type: "lookout",
      text: form.text.value,
      area: form.area.value ? { site: form.area.value } : "network",
      expires_in: Number(form.hours.value || 24) * 3600,
    };
    const file = form.photo.files[0];
    if (file) body.photo = await shrinkPhoto(file);
    if (await publish(feed, body)) form.reset();
    else issueLookout();
  }

  $("issue").addEventListener("click", issueLookout);
  addEventListener("langchange", () => {
    queue?.render();
    lookoutList?.render();
  });
  return {
    feed,
    lookouts,
    showAlarm,
    start: startAlerts,
    get queue() {
      return queue;
    },
    get popupTile() {
      return popupTile;
    },
  };
}
