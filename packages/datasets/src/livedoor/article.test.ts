import { describe, expect, it } from 'vitest';
import { buildLivedoorCorpus, normalizeLivedoorBody, normalizeLivedoorTitle, parseLivedoorArticle } from './article.js';
import { formatLivedoor } from './template.js';

describe('livedoor title', () => {
  it('applies NFKC, then strips full-width and ASCII spaces at both ends (the study code)', () => {
    expect(normalizeLivedoorTitle('　【ＳＭＡＸ】　ｱﾝﾄﾞﾛｲﾄﾞ　新機種 ')).toBe('【SMAX】 アンドロイド 新機種');
    expect(normalizeLivedoorTitle('（映画）　１２０分！')).toBe('(映画) 120分!');
  });

  it("removes every space with titleSpaces: 'remove'", () => {
    expect(normalizeLivedoorTitle('　【ＳＭＡＸ】　ｱﾝﾄﾞﾛｲﾄﾞ　新機種 ', { titleSpaces: 'remove' })).toBe('【SMAX】アンドロイド新機種');
  });
});

describe('livedoor body', () => {
  it('NFKC per line, strip, drop empty lines, join with \\n', () => {
    expect(normalizeLivedoorBody(['　ＰＣの話。', '', '　', '  ﾃﾚﾋﾞ（４Ｋ）  ', '㈱テスト'])).toBe('PCの話。\nテレビ(4K)\n(株)テスト');
  });
});

describe('parseLivedoorArticle', () => {
  it('reads URL, date, title and body', () => {
    const text = 'http://news.livedoor.com/article/detail/1/\r\n2012-01-01T00:00:00+0900\r\n　題名　\r\n　本文１\r\n\r\n本文２\r\n';
    expect(parseLivedoorArticle(text, 'smax', 'smax-1.txt')).toEqual({
      id: 'smax-1',
      category: 'smax',
      url: 'http://news.livedoor.com/article/detail/1/',
      date: '2012-01-01T00:00:00+0900',
      title: '題名',
      body: '本文1\n本文2',
    });
  });

  it('accepts a file with exactly 3 lines (empty body)', () => {
    expect(parseLivedoorArticle('u\nd\nt', 'peachy', 'peachy-2.txt').body).toBe('');
  });

  it('rejects a file with fewer than 3 lines, naming it', () => {
    expect(() => parseLivedoorArticle('http://x/\n2012-01-01\n', 'peachy', 'peachy-3.txt')).toThrow(
      'livedoor article peachy/peachy-3.txt has 2 line(s); expected at least 3',
    );
  });
});

describe('buildLivedoorCorpus', () => {
  it('labels are the sorted category names; examples ordered by category then numeric id', () => {
    const a = (category: string, n: number) => ({ id: `${category}-${n}`, category, url: '', date: '', title: '', body: '' });
    const corpus = buildLivedoorCorpus([a('smax', 10), a('peachy', 2), a('smax', 9), a('it-life-hack', 5)]);
    expect(corpus.labels).toEqual(['it-life-hack', 'peachy', 'smax']);
    expect(corpus.examples.map((e) => [e.id, e.label])).toEqual([
      ['it-life-hack-5', 0],
      ['peachy-2', 1],
      ['smax-9', 2],
      ['smax-10', 2],
    ]);
  });
});

describe('formatLivedoor', () => {
  const ex = { title: '題名', body: '一行目\n二行目' };
  it('writes the three study templates exactly', () => {
    expect(formatLivedoor(ex, 0)).toBe('タイトル: 題名\n本文: 一行目\n二行目\nラベル: ');
    expect(formatLivedoor(ex, 1)).toBe('タイトル: 題名\n本文: 一行目\n二行目');
    expect(formatLivedoor(ex, 2)).toBe('題名\n一行目\n二行目');
  });

  it('rejects an unknown template', () => {
    expect(() => formatLivedoor(ex, 3 as 0)).toThrow('unknown livedoor template 3: supported are 0, 1, 2');
  });
});
