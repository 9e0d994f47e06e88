import { describe, expect, it } from "vitest";
import { blockShares, parseDump } from "../../scripts/device/espruino-profile";

// A hand-written E.dumpVariables() listing in the 2v29 format (ref,blocks,type,description,links):
// the root holds a global "f", a function with 2 parameters, its code and a scope link; the scope
// (a block of a function's type) holds two locals, one a 2-block string.
const DUMP = [
  "ref,size,flags,name,links...",
  "1,1,1,Object,2,",
  '2,1,25,"f",3,',
  "3,1,7,,4,5,6,8,",
  '4,1,26,"\\xFFe",',
  '5,1,26,"\\xFFt",',
  '6,1,28,"\\xFFcod",7,',
  '7,1,41,String "x=>x",',
  '8,1,28,"\\xFFsco",9,',
  "9,1,7,,10,11,",
  '10,1,25,"a",12,',
  '11,1,25,"b",',
  '12,2,37,String "twelve chars",',
];

describe("espruino-profile: where the blocks go, from E.dumpVariables()", () => {
  const vars = parseDump(DUMP);

  it("reads every listed block with its size, description and links", () => {
    expect(vars.size).toBe(12);
    expect(vars.get(12)).toEqual({ ref: 12, blocks: 2, type: 37, description: 'String "twelve chars"', links: [] });
    expect(vars.get(3)!.links).toEqual([4, 5, 6, 8]);
  });

  it("counts a closure's scope apart from the functions, though both have a function's type", () => {
    const s = blockShares(vars);
    expect(s.total).toBe(13);
    expect(s.functions).toBe(1);
    // the function, its 2 parameter names, the code name and the code, the scope link
    expect(s.functionBlocks).toBe(6);
    expect(s.parameters).toBe(2);
    expect(s.scopes).toBe(1);
    expect(s.scopeLocals).toBe(2);
    // the scope and its two local names (the string a local holds is not the scope's)
    expect(s.scopeBlocks).toBe(3);
    expect(s.other).toBe(13 - 6 - 3);
  });
});
