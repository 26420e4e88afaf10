// The app shell: session check, hash routes (#/, #/new, #/campaigns/<id>, #/login)
// and the header. Each view renders into <main> and returns a cleanup function.

import { api, onUnauthorized, place, session } from "./api.js";
import { createView } from "./views/create.js";
import { detailView } from "./views/detail.js";
import { listView } from "./views/list.js";
import { loginView } from "./views/login.js";

const main = document.getElementById("main");
let cleanup = () => {};
let notice = null; // a message for the next view ({kind, text})

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  if (hash === "/login") return { name: "login" };
  if (hash === "/new") return { name: "new" };
  const m = hash.match(/^\/campaigns\/([0-9a-fA-F-]{36})$/);
  if (m) return { name: "detail", id: m[1].toLowerCase() };
  return { name: "list" };
}

/** Go to a route, optionally showing a message there. */
export function navigate(hash, withNotice = null) {
  notice = withNotice;
  if (location.hash === hash) render();
  else location.hash = hash;
}

function signOut(text) {
  session.clear();
  namespacesFor = null;
  navigate("#/login", text ? { kind: "info", text } : null);
}

function header(r) {
  const s = session.get();
  const signedIn = Boolean(s) && r.name !== "login";
  document.getElementById("topnav").hidden = !signedIn;
  document.getElementById("account").hidden = !signedIn;
  document.getElementById("account-email").textContent = s ? s.email : "";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === r.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

let namespacesFor = null; // the token the menu was filled for

/** Fill the namespace menu with the namespaces the user may list campaigns in (the API
 * asks Kubernetes per namespace), once per sign-in; keeps the choice if still allowed. */
async function fillNamespaces() {
  const s = session.get();
  if (!s || namespacesFor === s.token) return;
  namespacesFor = s.token;
  const menu = document.getElementById("namespace");
  let answer;
  try {
    answer = await api.namespaces();
  } catch {
    namespacesFor = null;
    return;
  }
  const items = answer.items;
  const chosen = items.includes(place.get()) ? place.get()
    : items.includes(answer.default) ? answer.default : items[0] || "";
  menu.replaceChildren(...items.map((ns) => {
    const o = document.createElement("option");
    o.value = ns;
    o.textContent = ns;
    o.selected = ns === chosen;
    return o;
  }));
  menu.disabled = items.length === 0;
  // the views read the choice on their next request (the list polls), so no re-render
  // here: it would wipe a form being filled in
  place.set(chosen);
}

function render() {
  cleanup();
  let r = route();
  if (r.name !== "login" && (!session.get() || session.expired())) {
    const hadSession = Boolean(session.get());
    session.clear();
    if (hadSession) notice = { kind: "info", text: "Your session has expired. Please sign in again." };
    sessionStorage.setItem("notifq.returnTo", location.hash || "#/");
    history.replaceState(null, "", "#/login");
    r = { name: "login" };
  }
  header(r);
  if (r.name !== "login") fillNamespaces();
  const shown = notice;
  notice = null;
  main.replaceChildren();
  const ctx = { notice: shown, navigate };
  const views = { login: loginView, list: listView, new: createView, detail: detailView };
  cleanup = views[r.name](main, ctx, r) || (() => {});
  const titles = { login: "Sign in", list: "Campaigns", new: "New campaign", detail: "Campaign" };
  document.title = `${titles[r.name]} · notifq`;
}

onUnauthorized((text) => {
  namespacesFor = null;
  if (location.hash === "#/login") return; // several requests were refused at once
  sessionStorage.setItem("notifq.returnTo", location.hash || "#/");
  navigate("#/login", { kind: "info", text });
});
document.getElementById("namespace").addEventListener("change", (e) => {
  place.set(e.target.value);
  navigate("#/");
});
document.getElementById("logout").addEventListener("click", () => signOut("You have signed out."));
window.addEventListener("hashchange", render);
render();
