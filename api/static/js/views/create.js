// New campaign form (POST /campaigns). The API validates; its 400 answers
// ({error, detail: [{loc, msg}]}) are shown next to the fields they concern.

import { api, ApiError, place } from "../api.js";
import { h, message } from "../ui.js";

/** A labelled field with a hint and an error slot, wired with aria-describedby. */
function field(id, label, control, hint) {
  const err = h("p", { class: "field-error", id: `${id}-error` });
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  control.id = id;
  control.setAttribute("aria-describedby", [hintEl && `${id}-hint`, `${id}-error`].filter(Boolean).join(" "));
  const el = h("div", { class: "field", dataset: { field: id } }, h("label", { for: id }, label), control, hintEl, err);
  el.setError = (text) => {
    err.textContent = text || "";
    if (text) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
  };
  return el;
}

const select = (options, value) =>
  h("select", {}, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));

/** Recipients pasted one per line, or separated by commas or semicolons. */
const parseList = (text) => text.split(/[\n,;]+/).map((s) => s.trim()).filter(Boolean);

function intOrUndefined(input) {
  const v = input.value.trim();
  return v === "" ? undefined : Number(v);
}

export function createView(root, ctx) {
  const inputs = {
    name: h("input", { type: "text", maxlength: 200, required: true, autocomplete: "off" }),
    recipientCount: h("input", { type: "number", min: 1, max: 100000, step: 1, value: 1000, inputmode: "numeric" }),
    recipients: h("textarea", { class: "mono", rows: 5, placeholder: "alice@company.com\nbob@company.com" }),
    targetEmail: h("input", { type: "email", autocomplete: "off", placeholder: "you@company.com" }),
    channel: select([["email", "Email"], ["sms", "SMS"], ["push", "Push"]], "email"),
    subject: h("input", { type: "text", maxlength: 998, placeholder: "Welcome, {{ recipient }}" }),
    body: h("textarea", { rows: 4, placeholder: "Message {{ index }} of {{ campaign }}" }),
    provider: select([["auto", "Automatic (by address)"], ["mock", "Mock (load test)"], ["ses", "Amazon SES"], ["sns", "Amazon SNS"], ["smtp", "SMTP relay"]], "auto"),
    retryAttempts: h("input", { type: "number", min: 1, max: 10, step: 1, placeholder: "4", inputmode: "numeric" }),
    retryBackoffMs: h("input", { type: "number", min: 100, max: 600000, step: 100, placeholder: "1000", inputmode: "numeric" }),
    rateLimit: h("input", { type: "number", min: 1, max: 100000, step: 1, placeholder: "no limit", inputmode: "numeric" }),
    scheduleAt: h("input", { type: "datetime-local" }),
  };
  const f = {
    name: field("c-name", "Name", inputs.name),
    recipientCount: field("c-count", "Number of recipients", inputs.recipientCount,
      "Generated test addresses at example.com, delivered by the mock provider (1–100,000)."),
    recipients: field("c-list", "Recipients", inputs.recipients,
      "One per line, or separated by commas (up to 10,000). Duplicates are removed."),
    targetEmail: field("c-target", "Also send to (optional)", inputs.targetEmail,
      "A real address to receive one copy, to check what recipients get."),
    channel: field("c-channel", "Channel", inputs.channel),
    subject: field("c-subject", "Subject", inputs.subject, "Variables: {{ recipient }}, {{ index }}, {{ campaign }}."),
    body: field("c-body", "Body", inputs.body),
    provider: field("c-provider", "Provider", inputs.provider),
    "retry.attempts": field("c-attempts", "Attempts per message", inputs.retryAttempts, "Including the first (1–10)."),
    "retry.backoffMs": field("c-backoff", "First retry after (ms)", inputs.retryBackoffMs, "Doubles on every retry."),
    rateLimit: field("c-rate", "Rate limit (messages/s)", inputs.rateLimit),
    scheduleAt: field("c-schedule", "Start at", inputs.scheduleAt, "Leave empty to start now. Your local time."),
  };

  const modeGenerate = h("input", { type: "radio", name: "mode", value: "generate", id: "mode-generate", checked: true });
  const modeList = h("input", { type: "radio", name: "mode", value: "list", id: "mode-list" });
  const syncMode = () => {
    f.recipientCount.hidden = !modeGenerate.checked;
    f.recipients.hidden = modeGenerate.checked;
  };
  modeGenerate.addEventListener("change", syncMode);
  modeList.addEventListener("change", syncMode);
  syncMode();

  const formError = h("div", { class: "alert alert-error", role: "alert", id: "create-error" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Create campaign");
  const form = h("form", { class: "form", novalidate: true, "aria-labelledby": "create-title" },
    formError,
    f.name,
    h("fieldset", {},
      h("legend", { class: "legend" }, "Recipients"),
      h("div", { class: "choices" },
        h("label", { class: "choice", for: "mode-generate" }, modeGenerate, "Generate test recipients"),
        h("label", { class: "choice", for: "mode-list" }, modeList, "Paste a list")),
      f.recipientCount, f.recipients, f.targetEmail),
    h("div", { class: "grid-2" }, f.channel, f.subject),
    f.body,
    h("details", { class: "advanced" }, h("summary", {}, "Delivery options"),
      h("div", { class: "grid-2" }, f.provider, f.rateLimit, f["retry.attempts"], f["retry.backoffMs"], f.scheduleAt)),
    h("div", { class: "form-actions" }, submit, h("a", { class: "btn", href: "#/" }, "Cancel")),
  );

  function payload() {
    const body = { name: inputs.name.value, channel: inputs.channel.value, provider: inputs.provider.value };
    if (place.get()) body.namespace = place.get();
    if (modeGenerate.checked) body.recipientCount = intOrUndefined(inputs.recipientCount);
    else body.recipients = parseList(inputs.recipients.value);
    const optional = {
      targetEmail: inputs.targetEmail.value.trim(),
      subject: inputs.subject.value,
      body: inputs.body.value,
      rateLimit: intOrUndefined(inputs.rateLimit),
    };
    for (const [k, v] of Object.entries(optional)) if (v !== "" && v !== undefined) body[k] = v;
    const retry = { attempts: intOrUndefined(inputs.retryAttempts), backoffMs: intOrUndefined(inputs.retryBackoffMs) };
    if (retry.attempts !== undefined || retry.backoffMs !== undefined) body.retry = retry;
    if (inputs.scheduleAt.value) body.scheduleAt = new Date(inputs.scheduleAt.value).toISOString();
    return body;
  }

  function showErrors(err) {
    let placed = false;
    for (const d of err.detail) {
      const loc = (d.loc || []).filter((p) => p !== "body");
      const key = typeof loc[1] === "string" && loc[0] === "retry" ? `retry.${loc[1]}` : loc[0];
      const target = f[key];
      if (target && !target.hidden) {
        const text = d.msg.replace(/^Value error, /, "");
        target.setError(text.charAt(0).toUpperCase() + text.slice(1));
        placed = true;
      }
    }
    formError.textContent = placed ? "Please correct the highlighted fields." : message(err);
    if (placed && err.detail.some((d) => String(d.loc).includes("retry") || String(d.loc).includes("rateLimit"))) {
      form.querySelector("details.advanced").open = true;
    }
    const first = form.querySelector("[aria-invalid='true']");
    (first || formError).focus?.();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.textContent = "";
    for (const el of Object.values(f)) el.setError("");
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const res = await api.create(payload());
      ctx.navigate("#/", {
        kind: "ok",
        id: res.campaignId,
        text: `Campaign “${res.name}” created with ${res.totalMessages.toLocaleString("en-US")} messages.`,
      });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return; // back to sign-in
      if (err instanceof ApiError) showErrors(err);
      else formError.textContent = message(err);
    } finally {
      submit.disabled = false;
      submit.textContent = "Create campaign";
    }
  });

  root.append(
    h("div", { class: "page-head" }, h("h1", { id: "create-title" }, "New campaign")),
    h("section", { class: "card" }, form),
  );
  inputs.name.focus();
}
