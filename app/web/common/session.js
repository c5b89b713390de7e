// The session a signed-in user's browser holds: an HttpOnly cookie no script can read. A page
// asks the server whether there is one (GET /v1/session) and keeps only its CSRF token, which it
// sends as X-CSRF-Token with every change (the browser sends the cookie by itself).

// {kind: "session", csrf, user} when this browser is signed in, else null (also when the
// server cannot be reached: the page then asks, and signing in says why).
export async function currentSession() {
  try {
    const reply = await fetch("/v1/session", { cache: "no-store" });
    if (!reply.ok) return null;
    const session = await reply.json();
    return { kind: "session", csrf: session.csrf_token, user: session.user };
  } catch (_) {
    return null;
  }
}

// Sign in with an email and password. {session} when it worked, else {message} for the person:
// what went wrong, without saying whether the email has an account.
export async function signIn(email, password) {
  let reply;
  try {
    reply = await fetch("/v1/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: email.trim(), password }),
      cache: "no-store",
    });
  } catch (_) {
    return { message: "The server cannot be reached." };
  }
  const body = await reply.json().catch(() => ({}));
  if (reply.status === 201) {
    return { session: { kind: "session", csrf: body.csrf_token, user: body.user } };
  }
  if (reply.status === 401) return { message: "Wrong email or password." };
  if (reply.status === 429) {
    const minutes = Math.max(1, Math.ceil(Number(reply.headers.get("retry-after") || 60) / 60));
    return { message: `Too many failed sign-ins. Try again in ${minutes} min.` };
  }
  return { message: body.reason || `Signing in failed (HTTP ${reply.status}).` };
}

// End the session on the server (every process refuses it at once).
export async function signOut(session) {
  await fetch("/v1/session", {
    method: "DELETE", headers: { "x-csrf-token": session.csrf }, cache: "no-store",
  }).catch(() => {});
}
