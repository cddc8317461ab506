# message: group.eml
require ["encoded-character", "fileinto"];
if header :contains "subject" "Caf${unicode:E9}" { fileinto "Unicode"; }
