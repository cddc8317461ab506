require "fileinto";
if allof (header :contains "subject" "report", not exists "x-nope") {
  if anyof (false, address :is "from" "nobody@example.org", true) { fileinto "Logic"; }
}
