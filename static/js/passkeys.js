// Passkeys (WebAuthn): forms marked data-passkey="create" (add one, /account/passkeys)
// or "get" (sign in) ask the server for the ceremony's options, let the browser ask the
// authenticator, and submit the answer as JSON in their `credential` field; the server
// verifies it. Without WebAuthn the sign-in forms stay hidden and the add form says so.
(() => {
  const supported = "PublicKeyCredential" in window && navigator.credentials;

  const toBase64url = (buffer) =>
    btoa(String.fromCharCode(...new Uint8Array(buffer)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const fromBase64url = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
  };
  const descriptors = (list) => (list || []).map((c) => ({ ...c, id: fromBase64url(c.id) }));

  async function fetchOptions(form) {
    const token = form.querySelector("input[name='csrf_token']").value;
    const response = await fetch(form.dataset.options, {
      method: "POST",
      headers: { "X-CSRFToken": token },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    return response.json();
  }

  async function create(options) {
    const credential = await navigator.credentials.create({
      publicKey: {
        ...options,
        challenge: fromBase64url(options.challenge),
        user: { ...options.user, id: fromBase64url(options.user.id) },
        excludeCredentials: descriptors(options.excludeCredentials),
      },
    });
    const response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        attestationObject: toBase64url(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : [],
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  async function get(options) {
    const credential = await navigator.credentials.get({
      publicKey: {
        ...options,
        challenge: fromBase64url(options.challenge),
        allowCredentials: descriptors(options.allowCredentials),
      },
    });
    const response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        authenticatorData: toBase64url(response.authenticatorData),
        signature: toBase64url(response.signature),
        userHandle: response.userHandle ? toBase64url(response.userHandle) : null,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  document.querySelectorAll("form[data-passkey]").forEach((form) => {
    const status = form.querySelector(".passkey-status");
    if (!supported) {
      if (form.dataset.passkey === "create") {
        form.querySelector("button, input[type='submit']").disabled = true;
        const note = document.querySelector(".passkey-unsupported");
        if (note) note.hidden = false;
      }
      return;
    }
    form.hidden = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = form.querySelector("input[name='name']");
      if (name && !name.value.trim()) {
        status.textContent = "Give the passkey a name first.";
        name.focus();
        return;
      }
      status.textContent = "Follow your browser's prompt…";
      try {
        const options = await fetchOptions(form);
        const answer = form.dataset.passkey === "create" ? await create(options) : await get(options);
        form.querySelector("input[name='credential']").value = JSON.stringify(answer);
        HTMLFormElement.prototype.submit.call(form);
      } catch (error) {
        status.textContent = error.name === "NotAllowedError"
          ? "The passkey prompt was closed or timed out. Try again."
          : `No passkey was used: ${error.message}`;
      }
    });
  });
})();
