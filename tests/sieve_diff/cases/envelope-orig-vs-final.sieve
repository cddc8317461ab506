# to: bob+orig@example.test
# user: robert@example.test
require ["envelope", "fileinto", "variables"];
if envelope :matches "to" "*" { fileinto "to-${1}"; }
