// /app/onboarding: our account ID and the ExternalId, the stack's links, "Connect account".
import { api } from "/assets/js/api.js";
import { copyButtons, session } from "/assets/js/shell.js";

const outcome = document.getElementById("outcome");

function say(lines) {
  outcome.replaceChildren(
    ...lines.map((line) => {
      const p = document.createElement("p");
      p.textContent = line;
      return p;
    }),
  );
}

function link(id, href) {
  const a = document.getElementById(id);
  if (href) {
    a.href = href;
    a.hidden = false;
  } else {
    a.hidden = true;
  }
}

async function main() {
  await session();
  const material = await api("/api/onboarding");
  document.getElementById("cao-account").textContent = material.cao_account_id;
  document.getElementById("external-id").textContent = material.external_id;
  link("quick-create", material.quick_create_url);
  link("template-yaml", material.templates.yaml);
  link("template-json", material.templates.json);
  link("template-stackset", material.templates.stackset_yaml);
  document.getElementById("quick-create-note").textContent = material.quick_create_note || "";
  copyButtons();

  const form = document.getElementById("connect");
  form.querySelector("button[type=submit]").disabled = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const roleArn = String(new FormData(form).get("role_arn")).trim();
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    say(["Connecting…"]);
    try {
      const account = await api("/api/accounts", { method: "POST", body: { role_arn: roleArn } });
      say([
        `Connected AWS account ${account.aws_account_id}: ${account.status}.`,
        account.status_message || "",
      ].filter(Boolean));
    } catch (error) {
      const lines = [error.message];
      for (const [key, value] of Object.entries(error.details || {})) {
        if (key === "code" || key === "message") continue;
        lines.push(`${key.replaceAll("_", " ")}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
      }
      say(lines);
    } finally {
      submit.disabled = false;
    }
  });
}

main().catch((error) => say([error.message]));
