/**
 * A small Prometheus registry: labelled counters and gauges that are read when scraped.
 *
 * Every family has a sample on every scrape, zero included: a counter nobody bumped yet renders
 * `name 0` (a labelled one has its known label sets made up front by its owner), and a gauge's
 * collect returns a sample per known label set. A series that appears only once it is non-zero
 * breaks `rate()` and alerts on absence.
 */

type Labels = Record<string, string>;

/** One labelled series of a counter, kept by its caller. */
export interface CounterSeries {
  inc(by?: number): void;
}

export class Counter {
  readonly values = new Map<string, { labels: Labels; value: number }>();
  readonly name: string;
  readonly help: string;
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    const entry = this.values.get(key);
    if (entry) entry.value += by;
    else this.values.set(key, { labels, value: by });
  }

  /** The series of `labels`, to keep and bump: no labels object and no key per increment. */
  series(labels: Labels): CounterSeries {
    const key = labelKey(labels);
    let entry = this.values.get(key);
    if (!entry) this.values.set(key, entry = { labels, value: 0 });
    const found = entry;
    return {
      inc: (by = 1) => {
        found.value += by;
      },
    };
  }

  /**
   * The series per value of one label, each made once: for counters bumped per message.
   *
   * @example
   * const out = counter.by("endpoint");
   * out("orders").inc();
   */
  by(label: string): (value: string) => CounterSeries {
    const series = new Map<string, CounterSeries>();
    return (value) => {
      let found = series.get(value);
      if (!found) series.set(value, found = this.series({ [label]: value }));
      return found;
    };
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels))?.value ?? 0;
  }
}

export interface GaugeSample {
  labels?: Labels;
  value: number;
}

interface Collected {
  name: string;
  help: string;
  type: "gauge" | "counter";
  collect: () => GaugeSample[] | Promise<GaugeSample[]>;
}

export class Metrics {
  #counters: Counter[] = [];
  #collected: Collected[] = [];

  counter(name: string, help: string): Counter {
    const counter = new Counter(name, help);
    this.#counters.push(counter);
    return counter;
  }

  /** A gauge whose samples are taken by `collect` at scrape time. */
  gauge(
    name: string,
    help: string,
    collect: () => GaugeSample[] | Promise<GaugeSample[]>,
  ): void {
    this.#collected.push({ name, help, type: "gauge", collect });
  }

  /** A counter kept elsewhere (the process's CPU time), read by `collect` at scrape time. */
  collectedCounter(name: string, help: string, collect: () => GaugeSample[]): void {
    this.#collected.push({ name, help, type: "counter", collect });
  }

  /** The Prometheus text exposition format. */
  async render(): Promise<string> {
    const out: string[] = [];
    for (const c of this.#counters) {
      out.push(`# HELP ${c.name} ${c.help}`, `# TYPE ${c.name} counter`);
      for (const { labels, value } of c.values.values()) {
        out.push(`${c.name}${formatLabels(labels)} ${value}`);
      }
      if (c.values.size === 0) out.push(`${c.name} 0`);
    }
    for (const g of this.#collected) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} ${g.type}`);
      // A gauge whose source is unreachable (the session store in an outage) has no samples
      // this scrape; the rest of the page still answers.
      const samples = await Promise.resolve().then(g.collect).catch(() => []);
      for (const { labels, value } of samples) {
        out.push(`${g.name}${formatLabels(labels ?? {})} ${value}`);
      }
    }
    return out.join("\n") + "\n";
  }
}

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels);
  // Counters are bumped per message, almost always with one label: no sort, no join.
  if (keys.length === 1) return `${keys[0]}=${labels[keys[0]]}`;
  return keys.sort().map((k) => `${k}=${labels[k]}`).join(",");
}

function formatLabels(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return "";
  const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
  return `{${keys.map((k) => `${k}="${escape(labels[k])}"`).join(",")}}`;
}
