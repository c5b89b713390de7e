// A customer's delivery instructions (gate code, where to leave it, whether it may be left
// without a signature, a note) as the lines people read: { field, label, words }, where
// `words` are the customer's own, to be shown as text only.
export function instructionLines(given) {
  if (!given) return [];
  const lines = [];
  if (given.gate_code) lines.push({ field: "gate_code", label: "Gate code: ", words: given.gate_code });
  if (given.leave_at) lines.push({ field: "leave_at", label: "Leave at: ", words: given.leave_at });
  if (given.safe_place_allowed === true) {
    lines.push({ field: "safe_place_allowed", label: "May be left without a signature", words: "" });
  }
  if (given.safe_place_allowed === false) {
    lines.push({ field: "safe_place_allowed", label: "Never leave without a signature", words: "" });
  }
  if (given.note) lines.push({ field: "note", label: "Customer: ", words: given.note });
  return lines;
}
