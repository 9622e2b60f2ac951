/**
 * Writes the fixture corpora under packages/datasets/fixtures/ (deterministic: same bytes every run).
 * All text is written for this project; nothing is copied from the livedoor or BC5CDR corpora.
 *
 *   pnpm exec tsx packages/datasets/scripts/make-fixtures.ts
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import {
  type BiomedicalDocument,
  documentsToSentences,
  formatBio,
  formatBioC,
  formatPubTator,
  type Mention,
  PhiloxStream,
  type TarWriteEntry,
  writeTar,
} from '../src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

// ---------------------------------------------------------------- livedoor-style news (Study A)

interface CategoryVocabulary {
  /** Topic nouns that mark the category. */
  nouns: string[];
  /** Title patterns; {a} and {b} are filled with nouns. */
  titles: string[];
  /** Body sentence patterns. */
  sentences: string[];
}

const CATEGORIES: Record<string, CategoryVocabulary> = {
  'dokujo-tsushin': {
    nouns: ['婚活', '独身女性', '恋愛', '結婚式', 'アラサー', '女子会', '彼氏', 'お見合い'],
    titles: ['独女が語る{a}のホンネ', '{a}と{b}、アラサー独女の悩み', '【独女通信】　{a}に疲れたら'],
    sentences: [
      '三十代の独身女性に{a}について聞いてみた。',
      '「{a}より{b}が大事」と語るＯＬも少なくない。',
      '女子会では{a}の話題で盛り上がるという。',
      '独女たちの{b}事情は複雑だ（２０代と３０代で違う）。',
      '友人の結婚式に出るたび{a}を考えてしまうそうだ。',
    ],
  },
  'it-life-hack': {
    nouns: ['パソコン', 'クラウド', 'セキュリティソフト', 'ＵＳＢメモリ', 'ルーター', 'Ｗｉｎｄｏｗｓ', 'ﾌﾘｰｿﾌﾄ', '無線ＬＡＮ'],
    titles: ['{a}を便利に使うワザ', '【ITライフハック】　{a}と{b}の設定術', '今すぐ試せる{a}活用法'],
    sentences: [
      '{a}の設定は意外と簡単だ。',
      '{b}を導入すればデータのバックアップも安心できる。',
      'ＰＣの動作が遅いときは{a}を見直そう。',
      '最新の{a}はｾｷｭﾘﾃｨ機能が強化されている（無料版あり）。',
      '仕事の効率化に{b}は欠かせない。',
    ],
  },
  'kaden-channel': {
    nouns: ['冷蔵庫', '掃除機', '液晶テレビ', 'エアコン', '洗濯機', '電子レンジ', 'ﾄﾞﾗｲﾔｰ', '省エネ家電'],
    titles: ['家電量販店で人気の{a}', '{a}と{b}、買い替えるなら今！', '【家電チャンネル】　{a}の選び方'],
    sentences: [
      '新型の{a}は消費電力が約３０％少ない。',
      '家電量販店では{b}の売れ行きが好調だという。',
      '{a}のお手入れは月に１回が目安だ。',
      'メーカー各社が{a}の新モデルを発表した（価格は未定）。',
      '電気代を節約したいなら{b}を選ぼう。',
    ],
  },
  'livedoor-homme': {
    nouns: ['転職', '年収', 'ビジネスマン', '上司', 'キャリア', 'スーツ', '営業職', '管理職'],
    titles: ['デキる男の{a}術', '{a}で差がつく{b}の常識', '【Ｈｏｍｍｅ】　{a}に悩む３０代男性へ'],
    sentences: [
      '{a}を考える男性が増えている。',
      '{b}との付き合い方で評価は変わる。',
      '年収アップには{a}の戦略が必要だ。',
      '成功するビジネスマンは{b}を大切にするという（調査より）。',
      '{a}の面接ではスーツの着こなしも見られる。',
    ],
  },
  'movie-enter': {
    nouns: ['映画', '監督', '主演俳優', '試写会', '興行収入', '新作', 'ハリウッド', '続編'],
    titles: ['話題の{a}がついに公開', '{a}の{b}に観客が感動', '【映画】　{a}、初日から大ヒット'],
    sentences: [
      '全国の映画館で{a}が公開された。',
      '{b}は舞台あいさつで撮影の裏話を明かした。',
      '試写会では{a}に拍手が起きた（上映時間は１２０分）。',
      '公開初週の{b}は１０億円を突破した。',
      'ファンの間では{a}の続編を期待する声も多い。',
    ],
  },
  peachy: {
    nouns: ['コスメ', 'スイーツ', 'ダイエット', 'ネイル', 'ファッション', '美肌', 'ﾊﾟﾝｹｰｷ', 'ヘアアレンジ'],
    titles: ['女子に人気の{a}特集', '{a}で{b}もかなう！', '【Ｐｅａｃｈｙ】　春の{a}トレンド'],
    sentences: [
      '今季注目の{a}を紹介しよう。',
      '{b}にこだわる女性が増えているそうだ。',
      '話題の{a}はＳＮＳでも大人気。',
      '休日は{b}を楽しむのがおすすめ（予約が必要）。',
      'かわいい{a}で毎日をハッピーに。',
    ],
  },
  smax: {
    nouns: ['スマートフォン', 'Ａｎｄｒｏｉｄ', 'ドコモ', '新機種', 'アップデート', 'タブレット', 'ﾊﾞｯﾃﾘｰ', 'ＬＴＥ'],
    titles: ['{a}の新モデルが発売', '{a}向け{b}の配信開始', '【ＳＭＡＸ】　{a}を試してみた'],
    sentences: [
      '{a}の予約受付が始まった。',
      '{b}により通信速度が向上する。',
      '新しい端末は{a}に対応している（一部地域を除く）。',
      '{b}の持ちが改善されたと評判だ。',
      '発売日には{a}の販売店に行列ができた。',
    ],
  },
  'sports-watch': {
    nouns: ['プロ野球', 'サッカー日本代表', '本塁打', '決勝戦', 'エース', 'Ｊリーグ', 'ｺﾞｰﾙ', '選手'],
    titles: ['{a}で劇的な勝利', '{a}の{b}に注目集まる', '【スポーツ】　{a}、逆転で首位に'],
    sentences: [
      '昨夜の{a}は延長までもつれた。',
      '{b}が２試合連続で活躍した。',
      'ファンは{a}の結果に大きな声援を送った。',
      '監督は試合後、{b}の成長を評価した（会見より）。',
      '次戦でも{a}での活躍が期待される。',
    ],
  },
  'topic-news': {
    nouns: ['ネット掲示板', '政府', '騒動', '首相', '批判', '世論', 'ﾆｭｰｽ', '炎上'],
    titles: ['{a}で話題の{b}', '{a}に批判の声', '【話題】　{a}をめぐる{b}が拡大'],
    sentences: [
      'ネット上では{a}に関する書き込みが相次いだ。',
      '{b}について専門家は冷静な対応を求めている。',
      '今回の{a}は大きな議論を呼んでいる（１日時点）。',
      '{b}を受けて関係者が謝罪した。',
      '多くの人が{a}の行方を注視している。',
    ],
  },
};

const ARTICLES_PER_CATEGORY = 15;
const LICENSE_TEXT =
  'このフォルダの記事は @peft/datasets のテスト用に書き下ろした架空のものです。\r\nThese articles were written for the @peft/datasets tests.\r\n';

function fill(pattern: string, nouns: readonly string[], rng: PhiloxStream): string {
  const a = nouns[rng.nextInt(nouns.length)]!;
  let b = nouns[rng.nextInt(nouns.length)]!;
  if (b === a) b = nouns[(nouns.indexOf(a) + 1) % nouns.length]!;
  return pattern.replaceAll('{a}', a).replaceAll('{b}', b);
}

function livedoorArticles(): TarWriteEntry[] {
  const entries: TarWriteEntry[] = [{ path: 'text/', type: 'directory' }];
  entries.push({ path: 'text/README.txt', data: 'livedoor-style fixture corpus for @peft/datasets (not the real corpus).\n' });
  Object.entries(CATEGORIES).forEach(([category, vocab], c) => {
    const rng = new PhiloxStream(2024, c * 1000);
    entries.push({ path: `text/${category}/`, type: 'directory' });
    entries.push({ path: `text/${category}/LICENSE.txt`, data: LICENSE_TEXT });
    for (let k = 0; k < ARTICLES_PER_CATEGORY; k++) {
      const id = 6100000 + c * 7919 + k * 613;
      const day = 1 + ((c * 3 + k) % 28);
      let title = fill(vocab.titles[k % vocab.titles.length]!, vocab.nouns, rng);
      if (k % 4 === 1) title = `　${title}　`; // full-width spaces around the title
      if (k % 5 === 2) title = `${title} `; // a trailing ASCII space
      const lines = [
        `http://news.livedoor.com/article/detail/${id}/`,
        `2012-${String(1 + (k % 12)).padStart(2, '0')}-${String(day).padStart(2, '0')}T${String(8 + (k % 12)).padStart(2, '0')}:30:00+0900`,
        title,
      ];
      const paragraphs = 2 + rng.nextInt(2);
      for (let p = 0; p < paragraphs; p++) {
        const count = 1 + rng.nextInt(3);
        for (let s = 0; s < count; s++) {
          const sentence = fill(vocab.sentences[rng.nextInt(vocab.sentences.length)]!, vocab.nouns, rng);
          lines.push(s === 0 ? `　${sentence}` : sentence); // paragraphs indented with U+3000
        }
        lines.push('');
        if (p === 0 && k % 3 === 0) lines.push('　'); // a line holding only a full-width space
      }
      entries.push({ path: `text/${category}/${category}-${id}.txt`, data: `${lines.join('\n')}\n` });
    }
  });
  return entries;
}

function writeLivedoor(): void {
  const dir = join(root, 'livedoor');
  rmSync(dir, { recursive: true, force: true });
  const entries = livedoorArticles();
  for (const e of entries) {
    const path = join(dir, e.path);
    if (e.type === 'directory') mkdirSync(path, { recursive: true });
    else writeFileSync(path, e.data ?? '');
  }
  writeFileSync(join(dir, 'ldcc-fixture.tar.gz'), gzipSync(writeTar(entries), { level: 9 }));
}

// ---------------------------------------------------------------- BC5CDR-style abstracts (Study B)

/** Invented abstracts; `[[Type|id|text]]` marks a mention. Titles and abstracts are one string each. */
interface DraftDocument {
  pmid: string;
  title: string;
  abstract: string;
}

const SPLITS: Record<'Training' | 'Development' | 'Test', DraftDocument[]> = {
  Training: [
    {
      pmid: '90000001',
      title: '[[Chemical|F0001|Cisplatin]]-induced [[Disease|F1001|nephrotoxicity]] in aged rats.',
      abstract:
        'We studied renal function after a single dose of [[Chemical|F0001|cisplatin]] in aged rats. Serum [[Chemical|F0002|creatinine]] rose within three days, and tubular [[Disease|F1002|necrosis]] was seen in 6 of 8 animals. Pretreatment with [[Chemical|F0003|amifostine]] reduced the injury. These data suggest that age increases the risk of [[Disease|F1001|nephrotoxicity]].',
    },
    {
      pmid: '90000002',
      title: 'Reversible [[Disease|F1003|hepatotoxicity]] during [[Chemical|F0004|valproate]] therapy.',
      abstract:
        "A 34-year-old woman with [[Disease|F1004|epilepsy]] developed [[Disease|F1005|jaundice]] after four weeks of [[Chemical|F0004|valproate]]. Liver enzymes returned to normal when the drug was stopped. The patient's seizures were later controlled with [[Chemical|F0005|lamotrigine]], i.e. without further liver injury.",
    },
    {
      pmid: '90000003',
      title: '[[Chemical|F0006|Haloperidol]] and the risk of [[Disease|F1006|tardive dyskinesia]].',
      abstract:
        'Long-term use of [[Chemical|F0006|haloperidol]] was associated with [[Disease|F1006|tardive dyskinesia]] in 12% of patients. The risk was lower with [[Chemical|F0007|clozapine]] (3%). Patients with [[Disease|F1007|schizophrenia]] should be monitored every six months.',
    },
    {
      pmid: '90000004',
      title: '[[Disease|F1008|Cardiac arrhythmias]] after intravenous [[Chemical|F0008|doxorubicin]].',
      abstract:
        'Electrocardiograms were recorded in 40 patients receiving [[Chemical|F0008|doxorubicin]] for [[Disease|F1009|breast cancer]]. Transient [[Disease|F1010|tachycardia]] occurred in 9 patients. Co-administration of [[Chemical|F0009|dexrazoxane]] lowered the incidence of [[Disease|F1008|cardiac arrhythmias]] to 2.5%.',
    },
    {
      pmid: '90000005',
      title: '[[Chemical|F0010|Lithium]] treatment and [[Disease|F1011|hypothyroidism]]: a cohort study.',
      abstract:
        'Among 210 patients with [[Disease|F1012|bipolar disorder]] treated with [[Chemical|F0010|lithium]], 31 developed [[Disease|F1011|hypothyroidism]]. Women were affected more often than men. Thyroid function should be checked before and during therapy, e.g. every year.',
    },
    {
      pmid: '90000006',
      title:
        'Protective effect of [[Chemical|F0011|N-acetylcysteine]] on [[Chemical|F0012|acetaminophen]] [[Disease|F1003|hepatotoxicity]].',
      abstract:
        'Mice given an overdose of [[Chemical|F0012|acetaminophen]] showed centrilobular [[Disease|F1002|necrosis]]. [[Chemical|F0011|N-acetylcysteine]] given within two hours prevented the damage. Glutathione levels were restored in treated mice.',
    },
    {
      pmid: '90000007',
      title: '[[Chemical|F0013|Gentamicin]] [[Disease|F1013|ototoxicity]] in neonates.',
      abstract:
        'Hearing was tested in 64 neonates exposed to [[Chemical|F0013|gentamicin]]. Two infants had bilateral [[Disease|F1014|hearing loss]]. Peak drug levels above 12 mg/L were linked to [[Disease|F1013|ototoxicity]].',
    },
    {
      pmid: '90000008',
      title: '[[Disease|F1015|Seizures]] induced by [[Chemical|F0014|bupropion]] overdose.',
      abstract:
        'We describe three adults who developed generalized [[Disease|F1015|seizures]] after ingesting [[Chemical|F0014|bupropion]]. One patient also had [[Disease|F1016|hypotension]]. All recovered after treatment with [[Chemical|F0015|lorazepam]].',
    },
  ],
  Development: [
    {
      pmid: '90000101',
      title: '[[Chemical|F0016|Methotrexate]]-associated [[Disease|F1017|pneumonitis]].',
      abstract:
        'A 58-year-old man receiving low-dose [[Chemical|F0016|methotrexate]] for [[Disease|F1018|rheumatoid arthritis]] presented with cough and fever. Chest imaging showed diffuse infiltrates. Symptoms resolved after withdrawal of the drug and a course of [[Chemical|F0017|prednisolone]].',
    },
    {
      pmid: '90000102',
      title: '[[Disease|F1019|Rhabdomyolysis]] in patients taking [[Chemical|F0018|simvastatin]] with [[Chemical|F0019|clarithromycin]].',
      abstract:
        'Five cases of [[Disease|F1019|rhabdomyolysis]] were identified. Each patient had started [[Chemical|F0019|clarithromycin]] while on [[Chemical|F0018|simvastatin]]. Creatine kinase exceeded 10,000 U/L in all cases, and two developed [[Disease|F1020|acute kidney injury]].',
    },
    {
      pmid: '90000103',
      title: "The rat's response to [[Chemical|F0020|reserpine]]: a model of [[Disease|F1021|depression]].",
      abstract:
        'Rats treated with [[Chemical|F0020|reserpine]] showed reduced locomotion and [[Disease|F1022|weight loss]]. [[Chemical|F0021|Imipramine]] reversed these changes. The model may help screen new antidepressants.',
    },
    {
      pmid: '90000104',
      title: '[[Disease|F1023|Agranulocytosis]] after [[Chemical|F0022|metamizole]].',
      abstract:
        'We report a woman who developed [[Disease|F1023|agranulocytosis]] and [[Disease|F1024|sepsis]] ten days after starting [[Chemical|F0022|metamizole]]. Neutrophil counts recovered after 12 days of [[Chemical|F0023|filgrastim]].',
    },
    {
      pmid: '90000105',
      title: 'Low-dose [[Chemical|F0024|aspirin]] and [[Disease|F1025|gastrointestinal bleeding]].',
      abstract:
        'In a cohort of 1,240 older adults, daily [[Chemical|F0024|aspirin]] increased the rate of [[Disease|F1025|gastrointestinal bleeding]]. Adding [[Chemical|F0025|omeprazole]] halved this risk. No excess of [[Disease|F1026|stroke]] was observed.',
    },
    {
      pmid: '90000106',
      title: '[[Chemical|F0026|Amiodarone]] and [[Disease|F1027|pulmonary fibrosis]].',
      abstract:
        'Pulmonary function declined in 7 of 52 patients treated with [[Chemical|F0026|amiodarone]] for [[Disease|F1028|atrial fibrillation]]. Two had biopsy-proven [[Disease|F1027|pulmonary fibrosis]].',
    },
  ],
  Test: [
    {
      pmid: '90000201',
      title: '[[Chemical|F0027|Vincristine]] [[Disease|F1029|neuropathy]] in children.',
      abstract:
        'Children receiving [[Chemical|F0027|vincristine]] for [[Disease|F1030|leukemia]] were followed for one year. Sensory [[Disease|F1029|neuropathy]] developed in 28%. Symptoms were milder in those given [[Chemical|F0028|pyridoxine]].',
    },
    {
      pmid: '90000202',
      title: '[[Disease|F1031|Hyperkalemia]] with [[Chemical|F0029|spironolactone]] in [[Disease|F1032|heart failure]].',
      abstract:
        'Serum [[Chemical|F0030|potassium]] was measured in 300 patients with [[Disease|F1032|heart failure]] after [[Chemical|F0029|spironolactone]] was added. [[Disease|F1031|Hyperkalemia]] occurred in 8% and was more common with [[Disease|F1033|renal insufficiency]].',
    },
    {
      pmid: '90000203',
      title: '[[Chemical|F0031|Isoniazid]]-related [[Disease|F1003|hepatotoxicity]] among tuberculosis contacts.',
      abstract:
        'Of 500 contacts given [[Chemical|F0031|isoniazid]], 11 developed [[Disease|F1003|hepatotoxicity]]. Alcohol use and age over 35 years were risk factors. Monthly review is advised.',
    },
    {
      pmid: '90000204',
      title: '[[Chemical|F0032|Ketamine]] and [[Disease|F1034|cystitis]] in recreational users.',
      abstract:
        'Urinary symptoms were assessed in 45 recreational users of [[Chemical|F0032|ketamine]]. Ulcerative [[Disease|F1034|cystitis]] was confirmed in 19. Stopping the drug improved bladder capacity.',
    },
    {
      pmid: '90000205',
      title: '[[Disease|F1035|Hypoglycemia]] caused by [[Chemical|F0033|glibenclamide]] in elderly patients.',
      abstract:
        'Severe [[Disease|F1035|hypoglycemia]] was recorded in 23 elderly patients taking [[Chemical|F0033|glibenclamide]]. Most had [[Disease|F1036|chronic kidney disease]]. Switching to [[Chemical|F0034|metformin]] prevented recurrences.',
    },
    {
      pmid: '90000206',
      title: 'Ocular [[Disease|F1037|toxicity]] of [[Chemical|F0035|hydroxychloroquine]].',
      abstract:
        'Retinal screening of 180 patients on [[Chemical|F0035|hydroxychloroquine]] for [[Disease|F1038|lupus]] found [[Disease|F1039|retinopathy]] in 4. Daily doses above 5 mg/kg were a risk factor.',
    },
  ],
};

function realise(draft: DraftDocument): BiomedicalDocument {
  const mentions: Mention[] = [];
  const strip = (marked: string, offset: number): string => {
    let out = '';
    let pos = 0;
    const re = /\[\[(\w+)\|(\w+)\|([^\]]+)\]\]/g;
    for (let m = re.exec(marked); m; m = re.exec(marked)) {
      out += marked.slice(pos, m.index);
      const start = offset + out.length;
      out += m[3]!;
      mentions.push({ start, end: start + m[3]!.length, text: m[3]!, type: m[1]!, conceptId: m[2]! });
      pos = m.index + m[0].length;
    }
    return out + marked.slice(pos);
  };
  const title = strip(draft.title, 0);
  const abstract = strip(draft.abstract, title.length + 1);
  const passages = [
    { type: 'title', offset: 0, text: title },
    { type: 'abstract', offset: title.length + 1, text: abstract },
  ];
  return { id: draft.pmid, passages, text: `${title} ${abstract}`, mentions };
}

function withRelations(pubtator: string, documents: readonly BiomedicalDocument[]): string {
  // Add one chemical-induced-disease relation line per document, as in the CDR files (readers ignore them).
  const blocks = pubtator.trimEnd().split('\n\n');
  return `${blocks
    .map((block, i) => {
      const d = documents[i]!;
      const chemical = d.mentions.find((m) => m.type === 'Chemical');
      const disease = d.mentions.find((m) => m.type === 'Disease');
      return chemical && disease ? `${block}\n${d.id}\tCID\t${chemical.conceptId}\t${disease.conceptId}` : block;
    })
    .join('\n\n')}\n\n`;
}

function writeBc5cdr(): void {
  const dir = join(root, 'bc5cdr');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [split, drafts] of Object.entries(SPLITS)) {
    const documents = drafts.map(realise);
    writeFileSync(join(dir, `CDR_${split}Set.PubTator.txt`), withRelations(formatPubTator(documents), documents));
    writeFileSync(join(dir, `CDR_${split}Set.BioC.xml`), formatBioC(documents));
    const { sentences, warnings } = documentsToSentences(documents);
    if (warnings.length > 0) throw new Error(`fixture ${split}: ${warnings.join('; ')}`);
    writeFileSync(join(dir, `CDR_${split}Set.BIO.tsv`), formatBio(sentences));
  }
}

writeLivedoor();
writeBc5cdr();
console.log(`fixtures written to ${root}`);
