// The Node.js version the host tools need: 20 or later (package.json "engines", the
// README). npm runs this before each command (the "pre…" scripts in package.json), with
// plain node, so an older Node stops with one line saying so instead of a stack trace.
// Plain CommonJS on purpose: it must run on any Node, however old.
"use strict";
var NODE_MAJOR = 20;

/** The problem with a Node version ("20.11.1"), or undefined when it will do. */
function nodeVersionProblem(version) {
  var m = /^v?(\d+)\./.exec(version);
  if (m && Number(m[1]) >= NODE_MAJOR) return undefined;
  return "this needs Node.js " + NODE_MAJOR + " or later, and this is Node.js " + version.replace(/^v/, "") +
    ": install Node.js " + NODE_MAJOR + " (LTS) or newer, then npm install again";
}

module.exports = { NODE_MAJOR: NODE_MAJOR, nodeVersionProblem: nodeVersionProblem };

if (require.main === module) {
  var problem = nodeVersionProblem(process.versions.node);
  if (problem) {
    process.stderr.write(problem + "\n");
    process.exit(1);
  }
}
