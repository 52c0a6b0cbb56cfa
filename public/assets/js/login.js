// /login: sign in with a discoverable passkey, then the page asked for (same origin) or onboarding.
import { signIn } from "/assets/js/passkeys.js";

const status = document.getElementById("status");
const button = document.getElementById("sign-in");

function next() {
  const wanted = new URLSearchParams(location.search).get("next") || "";
  return /^\/app\/[A-Za-z0-9/_-]*$/.test(wanted) ? wanted : "/app/onboarding";
}

button.addEventListener("click", async () => {
  button.disabled = true;
  status.textContent = "Waiting for your passkey…";
  try {
    await signIn();
    location.assign(next());
  } catch (error) {
    status.textContent = error.message;
    button.disabled = false;
  }
});
