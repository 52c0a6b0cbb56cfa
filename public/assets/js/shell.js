// The signed-in shell of every /app/* page: who is signed in, "Sign out", the CSRF token for
// every change. Without a session the page goes to /login (and comes back after).
import { api, ApiError, setCsrfToken } from "/assets/js/api.js";

export async function session() {
  let current;
  try {
    current = await api("/api/session");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      location.replace("/login?next=" + encodeURIComponent(location.pathname));
      return new Promise(() => {});
    }
    throw error;
  }
  setCsrfToken(current.csrf_token);
  document.getElementById("who").textContent =
    `${current.user.name} (${current.user.email}), ${current.role}, ${current.agency.name}`;
  document.body.dataset.role = current.role;
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api("/api/session", { method: "DELETE" });
    location.assign("/login");
  });
  return current;
}

export function copyButtons(root = document) {
  for (const button of root.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(source.textContent || source.value);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select and copy";
      }
    });
  }
}
