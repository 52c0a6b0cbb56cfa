// Passkeys in the browser: the API's WebAuthn JSON options in, the credential's JSON out
// (Chromium's PublicKeyCredential.parseCreationOptionsFromJSON / parseRequestOptionsFromJSON
// and credential.toJSON(); no base64url of our own).

import { api, ApiError } from "/assets/js/api.js";

function supported() {
  return (
    typeof PublicKeyCredential !== "undefined" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function"
  );
}

function unsupported() {
  return new ApiError(0, "passkeys_unsupported", "this browser cannot use passkeys; use a current Chrome, Edge, Safari or Firefox");
}

function cancelled(error) {
  if (error instanceof ApiError) return error;
  return new ApiError(0, "passkey_cancelled", "the passkey was not created or used (cancelled or timed out); try again");
}

// Registers a passkey with an enrolment token; the answer sets the session cookie.
export async function registerPasskey(enrolmentToken) {
  if (!supported()) throw unsupported();
  const { options } = await api("/api/passkeys/registration/options", {
    method: "POST",
    body: { enrolment_token: enrolmentToken },
  });
  let credential;
  try {
    credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
    });
  } catch (error) {
    throw cancelled(error);
  }
  return api("/api/passkeys/registration", {
    method: "POST",
    body: { enrolment_token: enrolmentToken, credential: credential.toJSON() },
  });
}

// Signs in with a discoverable passkey (nothing to type).
export async function signIn() {
  if (!supported()) throw unsupported();
  const { options } = await api("/api/session/options", { method: "POST" });
  let credential;
  try {
    credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
    });
  } catch (error) {
    throw cancelled(error);
  }
  return api("/api/session", { method: "POST", body: { credential: credential.toJSON() } });
}
