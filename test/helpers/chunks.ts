/** fast-check: strings of `pieces` joined, cut into chunks anywhere, as a socket may deliver them. */
import fc from 'fast-check';

export function chunked(pieces: fc.Arbitrary<string>): fc.Arbitrary<Buffer[]> {
  return fc
    .tuple(fc.array(pieces, { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 8 }))
    .map(([ps, cuts]) => {
      const whole = Buffer.from(ps.join(''));
      const at = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let from = 0;
      for (const c of [...at, whole.length]) {
        if (c > from) chunks.push(whole.subarray(from, c));
        from = Math.max(from, c);
      }
      return chunks;
    });
}
