import { fold } from './align.js';

/**
 * Finds a mention in the input tokens: compared without whitespace (so `IFO's` finds `IFO 's`),
 * exact case first and case-insensitively if that finds nothing; a hit must start at a token's
 * first character and end at a token's last. Returns every non-overlapping occurrence.
 */
export class MentionLocator {
  private readonly joined: string;
  private readonly joinedFolded: string;
  private readonly tokOf: number[] = [];
  private readonly startsToken: boolean[] = [];
  private readonly endsToken: boolean[] = [];

  constructor(tokens: readonly string[]) {
    let joined = '';
    tokens.forEach((tok, t) => {
      const s = String(tok).replace(/\s+/g, '');
      for (let k = 0; k < s.length; k++) {
        this.tokOf.push(t);
        this.startsToken.push(k === 0);
        this.endsToken.push(k === s.length - 1);
      }
      joined += s;
    });
    this.joined = joined;
    this.joinedFolded = fold(joined);
  }

  locate(mention: string): { start: number; end: number }[] {
    const needle = mention.replace(/\s+/g, '');
    if (needle.length === 0) return [];
    const exact = this.scan(this.joined, needle);
    return exact.length > 0 ? exact : this.scan(this.joinedFolded, fold(needle));
  }

  private scan(hay: string, needle: string): { start: number; end: number }[] {
    const out: { start: number; end: number }[] = [];
    let from = 0;
    for (;;) {
      const at = hay.indexOf(needle, from);
      if (at < 0) return out;
      const last = at + needle.length - 1;
      if (this.startsToken[at] && this.endsToken[last]) {
        out.push({ start: this.tokOf[at], end: this.tokOf[last] + 1 });
        from = last + 1;
      } else {
        from = at + 1;
      }
    }
  }
}
