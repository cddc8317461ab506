# RFC 5429 §2.2: reject with fileinto/keep is an error at runtime.
require ["reject", "fileinto"];
fileinto "Kept";
reject "no";
