# message: ham.eml
require ["virustest", "fileinto"];
if virustest "1" { fileinto "Clean"; }
