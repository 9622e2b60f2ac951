/** Study A's input templates, by number. */
export type LivedoorTemplate = 0 | 1 | 2;

/**
 * The model input for one article:
 * - 0: `タイトル: {title}\n本文: {body}\nラベル: `
 * - 1: `タイトル: {title}\n本文: {body}`
 * - 2: `{title}\n{body}`
 */
export function formatLivedoor(example: { title: string; body: string }, template: LivedoorTemplate): string {
  const { title, body } = example;
  switch (template) {
    case 0:
      return `タイトル: ${title}\n本文: ${body}\nラベル: `;
    case 1:
      return `タイトル: ${title}\n本文: ${body}`;
    case 2:
      return `${title}\n${body}`;
    default:
      throw new Error(`unknown livedoor template ${JSON.stringify(template)}: supported are 0, 1, 2`);
  }
}
