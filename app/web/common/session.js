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
