// A short message at the bottom of the page (role=status, read out by screen readers).

let toastTimer = null;

export function toast(text, kind = "ok") {
  let el = document.getElementById("toast");
  if (!el) {
    el = element("div", "");
    el.id = "toast";
    el.setAttribute("role", "status");
    document.body.append(el);
  }
  el.textContent = text;
  el.className = `show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.className = ""), 8000);
}


function element(tag, className) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  return el;
}
