// Times as the dispatcher reads them: in the organisation's time zone (the snapshot's
// `time_zone`), never the browser's, so that a screen in another zone shows the clock the drivers
// and the customers see. Intl formatters are built once per zone and kept.

const formats = new Map();
const clocks = new Map();

const CLOCK = { hour: "2-digit", minute: "2-digit" };
const DAY = { weekday: "short", day: "numeric", month: "short" };
const DAY_AND_YEAR = { ...DAY, year: "numeric" };
const PARTS = { year: "numeric", month: "2-digit", day: "2-digit" };

function formatter(zone, options) {
  const key = `${zone}|${JSON.stringify(options)}`;
  let format = formats.get(key);
  if (format === undefined) {
    try {
      format = new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone });
    } catch {
      format = new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" }); // unknown zone
    }
    formats.set(key, format);
  }
  return format;
}

// The calendar day ("YYYY-MM-DD") of the instant `date` in `zone`.
function dayIn(zone, date) {
  const parts = Object.fromEntries(
    formatter(zone, PARTS).formatToParts(date).map((part) => [part.type, part.value]));
  return `${parts.year}-${parts.month}-${parts.day}`;
}

// The formatting of one zone; `zoneClock(zone)` returns the same object for the same zone.
class ZoneClock {
  constructor(zone) {
    this.zone = zone;
  }

  // "14:05" for an ISO instant; "" for none.
  time(iso) {
    return iso ? formatter(this.zone, CLOCK).format(new Date(iso)) : "";
  }

  // "14:05" for seconds since the epoch.
  epochTime(epochS) {
    return formatter(this.zone, CLOCK).format(new Date(epochS * 1000));
  }

  // Today's date ("YYYY-MM-DD") in the zone.
  today(now = new Date()) {
    return dayIn(this.zone, now);
  }

  // "just now", "3 min ago", "2 h ago", or "on Tue 14 May" (that day in the zone).
  ago(iso, nowMs = Date.now()) {
    const seconds = Math.max(0, (nowMs - new Date(iso).getTime()) / 1000);
    if (seconds < 60) return "just now";
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return `on ${formatter(this.zone, DAY).format(new Date(iso))}`;
  }

  // A calendar day ("YYYY-MM-DD", a date, not an instant) for the header: "Today, Tue 14 May",
  // "Tomorrow, …", "Yesterday, …", or "Tue 14 May 2024" (the year when it is not this year's).
  dayName(day, now = new Date()) {
    const [year, month, date] = day.split("-").map(Number);
    // Noon UTC of that date, formatted in UTC: the same calendar day whatever the zones.
    const noon = Date.UTC(year, month - 1, date, 12);
    const today = this.today(now);
    const relative = {
      [today]: "Today",
      [shiftDay(today, 1)]: "Tomorrow",
      [shiftDay(today, -1)]: "Yesterday",
    }[day];
    const thisYear = today.slice(0, 4) === day.slice(0, 4);
    const name = formatter("UTC", thisYear ? DAY : DAY_AND_YEAR).format(new Date(noon));
    return relative ? `${relative}, ${name}` : name;
  }
}

function shiftDay(day, days) {
  const [year, month, date] = day.split("-").map(Number);
  return new Date(Date.UTC(year, month - 1, date + days, 12)).toISOString().slice(0, 10);
}

export function zoneClock(zone) {
  let clock = clocks.get(zone);
  if (clock === undefined) {
    clock = new ZoneClock(zone);
    clocks.set(zone, clock);
  }
  return clock;
}

// "25 min", "1 h 40 min": a duration in whole minutes, at least one.
export function minutes(seconds) {
  const m = Math.max(1, Math.round(seconds / 60));
  return m < 90 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
