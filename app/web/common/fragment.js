// Secrets handed to a page in its address's fragment (#key=…, #token=…): read once, then taken
// out of the address bar, the history and any screenshot (the query, such as ?day=, stays).

// The value of `name` in the fragment, or null. Parsed by hand: URLSearchParams would turn a
// "+" in a pasted secret into a space.
export function takeFromFragment(name) {
  const prefix = `${name}=`;
  const pair = location.hash.slice(1).split("&").find((part) => part.startsWith(prefix));
  const value = pair ? decodeURIComponent(pair.slice(prefix.length)).trim() : "";
  if (!value) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return value;
}
