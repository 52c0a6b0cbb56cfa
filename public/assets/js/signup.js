// /signup: create the agency, register the first admin's passkey, show the API key once.
import { api } from "/assets/js/api.js";
import { registerPasskey } from "/assets/js/passkeys.js";

const form = document.getElementById("signup");
const status = document.getElementById("status");
const done = document.getElementById("done");
// Enabled once this module runs: the form never submits itself natively (its fields in a URL).
form.querySelector("button[type=submit]").disabled = false;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const email = String(data.get("email")).trim();
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  status.textContent = "Creating the agency…";
  try {
    const created = await api("/api/agencies", {
      method: "POST",
      body: {
        name: String(data.get("agency")).trim(),
        contact_email: email,
        admin: { name: String(data.get("name")).trim(), email },
      },
    });
    form.hidden = true;
    document.getElementById("api-key").value = created.api_key;
    done.hidden = false;
    status.textContent = "Agency created. Create your passkey to sign in.";
    await registerPasskey(created.enrolment.token);
    status.textContent = "Signed in. Keep the API key below, then continue.";
    document.getElementById("continue").hidden = false;
  } catch (error) {
    status.textContent = error.message;
    submit.disabled = false;
  }
});

document.getElementById("copy-key").addEventListener("click", async () => {
  const key = document.getElementById("api-key").value;
  try {
    await navigator.clipboard.writeText(key);
    status.textContent = "API key copied.";
  } catch {
    document.getElementById("api-key").select();
    status.textContent = "Select the key and copy it.";
  }
});
