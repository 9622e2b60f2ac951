/** The labelled text file: one example per line, `label<TAB>text`; `#` lines and blank lines are skipped. */

export interface Example {
  text: string;
  label: number;
}

export interface LabelledData {
  /** Label names in order of first appearance; an example's label is an index into this. */
  labels: string[];
  examples: Example[];
}

export function parseLabelledText(content: string, file = 'the labelled text file'): LabelledData {
  const labels: string[] = [];
  const examples: Example[] = [];
  content.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const tab = line.indexOf('\t');
    if (tab <= 0 || tab === line.length - 1) {
      throw new Error(`${file}, line ${i + 1}: expected "label<TAB>text", got ${JSON.stringify(line.slice(0, 60))}`);
    }
    const name = line.slice(0, tab).trim();
    let label = labels.indexOf(name);
    if (label < 0) label = labels.push(name) - 1;
    examples.push({ text: line.slice(tab + 1).trim(), label });
  });
  if (labels.length < 2) throw new Error(`${file}: found ${labels.length} label(s) (${labels.join(', ')}); a classifier needs at least 2`);
  return { labels, examples };
}

/** Every `every`-th example (1-based: the 4th, 8th, …) to the test split, the rest to training. */
export function split(data: LabelledData, every = 4): { train: Example[]; test: Example[] } {
  const train: Example[] = [];
  const test: Example[] = [];
  data.examples.forEach((e, i) => {
    ((i + 1) % every === 0 ? test : train).push(e);
  });
  return { train, test };
}

/** Token ids right-padded to the longest row (at most maxLength, the end kept with the EOS token), and the mask. */
export function collate(
  encoded: readonly (readonly number[])[],
  maxLength: number,
  padId: number,
): { inputIds: number[][]; attentionMask: number[][] } {
  const rows = encoded.map((ids) => (ids.length > maxLength ? [...ids.slice(0, maxLength - 1), ids[ids.length - 1]!] : [...ids]));
  const width = Math.max(...rows.map((r) => r.length));
  return {
    inputIds: rows.map((r) => [...r, ...Array<number>(width - r.length).fill(padId)]),
    attentionMask: rows.map((r) => [...r.map(() => 1), ...Array<number>(width - r.length).fill(0)]),
  };
}
