/**
 * "Did you mean": the closest of some known words to a mistyped one, by
 * edit distance, for the messages of the CLI and of settings validation.
 *
 * @example
 * ```ts
 * suggest("tpc", ["tcp", "ipc", "tls"]); // "tcp"
 * ```
 * @module
 */

/**
 * Edit distance with transpositions (optimal string alignment): the fewest
 * insertions, deletions, substitutions and swaps of two neighbours that turn
 * `a` into `b` ("tpc" is one swap from "tcp").
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}

/**
 * The candidate closest to `word` when it is close enough to be a typo of it
 * (a third of its length, at least 1 edit), else undefined.
 */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    // On a tie, a candidate with the same first letter is the likelier typo ("icp": ipc, not tcp).
    if (d < bestD || (d === bestD && c[0] === word[0] && best?.[0] !== word[0])) (best = c), (bestD = d);
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}
