// Sign in: exchanges email and password for a token (POST /auth/login).

import { api, ApiError, session } from "../api.js";
import { h, message } from "../ui.js";

export function loginView(root, ctx) {
  const alert = h("div", { class: "alert alert-error", role: "alert", id: "login-error" });
  const info = ctx.notice
    ? h("div", { class: `alert alert-${ctx.notice.kind}`, role: "status", id: "login-notice" }, ctx.notice.text)
    : null;
  const email = h("input", { id: "login-email", name: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", {
    id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true,
  });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Sign in");

  const form = h("form", { class: "form", novalidate: true, "aria-describedby": "login-error" },
    h("div", { class: "field" }, h("label", { for: "login-email" }, "Email"), email),
    h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"), password),
    h("div", { class: "form-actions" }, submit),
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    alert.textContent = "";
    if (!email.value.trim() || !password.value) {
      alert.textContent = "Enter your email and password.";
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const res = await api.login(email.value.trim(), password.value);
      session.set(res.token, res.admin.email);
      const back = sessionStorage.getItem("notifq.returnTo");
      sessionStorage.removeItem("notifq.returnTo");
      ctx.navigate(back && back !== "#/login" ? back : "#/");
    } catch (err) {
      let text = message(err);
      if (err instanceof ApiError && err.status === 401) text = "Invalid email or password.";
      if (err instanceof ApiError && err.status === 429 && err.retryAfter) {
        text = `Too many sign-in attempts. Try again in ${Math.ceil(err.retryAfter / 60)} min.`;
      }
      alert.textContent = text;
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });

  root.append(h("section", { class: "login card", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h("p", { class: "sub" }, "notifq campaign dashboard"),
    info, alert, form,
  ));
  email.focus();
}
