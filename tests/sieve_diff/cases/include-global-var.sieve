require ["include", "variables", "fileinto"];
global "who";
include "setvar";
fileinto "set-by-${who}";
