// Page labels: Chinese by default, English on request; the choice is kept in
// localStorage. Elements with data-i18n="key" (text), data-i18n-title and
// data-i18n-placeholder are filled by apply(); a "langchange" event on window
// tells the pages to redraw what they build themselves.

const STORE_KEY = "vw-lang";

const LABELS = {
  zh: {
    language: "English",
    wall: "监控墙",
    station: "派出所查看",
    page: "第 {page}/{pages} 页",
    pause: "暂停轮巡",
    resume: "继续轮巡",
    previous: "上一页",
    next: "下一页",
    online: "在线",
    offline: "离线",
    stalled: "无画面",
    starting: "连接中",
    idle: "待机",
    connecting: "连接中…",
    retrying: "重连中…",
    playing: "",
    empty: "空闲",
    last_seen: "最后画面 {time}",
    never_seen: "启动以来未收到画面",
    enlarge_hint: "双击放大 / 还原",
    alarm: "报警",
    alarm_title: "报警：{camera}",
    alarm_reason: "原因（简短）",
    send: "发送",
    cancel: "取消",
    answer: "服务器答复 {status}：{text}",
    not_sent: "未发送：{error}",
    sites: "站点与摄像机",
    search: "搜索摄像机或村名",
    counts: "{online} 在线 · {offline} 离线 · 共 {cameras}",
    layout: "画面布局",
    saved: "已存布局",
    mine: "我的",
    shared: "共享",
    load: "打开",
    delete: "删除",
    save: "保存",
    share: "共享给同事",
    layout_name: "布局名称",
    clear: "清空",
    remove: "移除",
    health: "离线摄像机",
    health_none: "全部在线",
    since: "离线自 {time}",
    saved_ok: "已保存",
    deleted_ok: "已删除",
    drop_hint: "点击或拖动摄像机到画面",
    lookout: "布控",
    until: "有效至 {time}",
    dismiss: "本屏不再显示",
    alarms: "报警队列",
    no_alarms: "没有待处理的报警",
    alarm_open: "待处理",
    alarm_acked: "已确认",
    alarm_assigned: "已派警",
    alarm_resolved: "已处置",
    ack: "确认",
    assign: "派警",
    resolve: "处置完毕",
    team: "派给哪个巡逻组？",
    note: "处置说明",
    snapshot: "报警截图",
    alarm_on: "报警：{camera}{reason}",
    issue_lookout: "发布布控",
    lookout_text: "布控内容（人、车、特征）",
    lookout_area: "范围",
    whole_network: "全网",
    lookout_photo: "照片（可选）",
    lookout_hours: "有效小时数",
    sent_ok: "已发布",
    inspection: "巡检",
    export_csv: "导出 CSV",
    today: "今日",
    yesterday: "昨日",
    camera_hours_online: "在线率（摄像机小时）",
    camera: "摄像机",
    online_min: "在线分钟",
    offline_min: "离线分钟",
    share: "在线率",
    offline_periods: "离线时段及原因",
    tamper: "遮挡/异常",
    recording: "录像覆盖",
    thirty_days: "近 30 天在线率",
    tamper_black: "黑屏",
    tamper_uniform: "遮挡",
    tamper_frozen: "画面冻结",
    tamper_blurred: "模糊",
    tamper_moved: "移位",
  },
  en: {
    language: "中文",
    wall: "Video wall",
    station: "Station viewer",
    page: "Page {page}/{pages}",
    pause: "Pause tour",
    resume: "Resume tour",
    previous: "Previous page",
    next: "Next page",
    online: "online",
    offline: "offline",
    stalled: "no video",
    starting: "starting",
    idle: "idle",
    connecting: "connecting…",
    retrying: "reconnecting…",
    playing: "",
    empty: "empty",
    last_seen: "last seen {time}",
    never_seen: "not seen since the node started",
    enlarge_hint: "double-click: enlarge / back",
    alarm: "Alarm",
    alarm_title: "Alarm: {camera}",
    alarm_reason: "Reason (short)",
    send: "Send",
    cancel: "Cancel",
    answer: "Server answered {status}: {text}",
    not_sent: "Not sent: {error}",
    sites: "Sites and cameras",
    search: "Search camera or village",
    counts: "{online} online · {offline} offline · {cameras} in all",
    layout: "Layout",
    saved: "Saved layouts",
    mine: "Mine",
    shared: "Shared",
    load: "Open",
    delete: "Delete",
    save: "Save",
    share: "Share with colleagues",
    layout_name: "Layout name",
    clear: "Clear",
    remove: "Remove",
    health: "Cameras offline",
    health_none: "All online",
    since: "offline since {time}",
    saved_ok: "Saved",
    deleted_ok: "Deleted",
    drop_hint: "Click or drag a camera here",
    lookout: "Lookout",
    until: "until {time}",
    dismiss: "Hide on this screen",
    alarms: "Alarm queue",
    no_alarms: "No open alarms",
    alarm_open: "open",
    alarm_acked: "acknowledged",
    alarm_assigned: "assigned",
    alarm_resolved: "resolved",
    ack: "Acknowledge",
    assign: "Assign",
    resolve: "Resolve",
    team: "Assign to which patrol team?",
    note: "What was done",
    snapshot: "snapshot",
    alarm_on: "Alarm: {camera}{reason}",
    issue_lookout: "Issue lookout",
    lookout_text: "Lookout (person, vehicle, features)",
    lookout_area: "Area",
    whole_network: "Whole network",
    lookout_photo: "Photo (optional)",
    lookout_hours: "Valid for hours",
    sent_ok: "Issued",
    inspection: "Inspection",
    export_csv: "Export CSV",
    today: "Today",
    yesterday: "Yesterday",
    camera_hours_online: "camera-hours online",
    camera: "Camera",
    online_min: "Online min",
    offline_min: "Offline min",
    share: "Online",
    offline_periods: "Offline periods and reasons",
    tamper: "Tamper",
    recording: "Recording",
    thirty_days: "Last 30 days online",
    tamper_black: "black",
    tamper_uniform: "covered",
    tamper_frozen: "frozen",
    tamper_blurred: "blurred",
    tamper_moved: "turned away",
  },
};

let current = LABELS[localStorage.getItem(STORE_KEY)] ? localStorage.getItem(STORE_KEY) : "zh";

export function lang() {
  return current;
}

export function t(key, vars = {}) {
  const text = LABELS[current][key] ?? LABELS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

export function setLang(code) {
  if (!LABELS[code] || code === current) return;
  current = code;
  localStorage.setItem(STORE_KEY, code);
  apply();
  dispatchEvent(new Event("langchange"));
}

export function toggleLang() {
  setLang(current === "zh" ? "en" : "zh");
}

export function apply(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}

// "14:02:05" today, "03-07 14:02" another day.
export function clockTime(seconds) {
  const when = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  const hms = `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`;
  if (when.toDateString() === new Date().toDateString()) return hms;
  return `${pad(when.getMonth() + 1)}-${pad(when.getDate())} ${hms.slice(0, 5)}`;
}
