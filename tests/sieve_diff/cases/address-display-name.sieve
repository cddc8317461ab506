# message: group.eml
require "fileinto";
if address :localpart :is "from" "alice" { fileinto "Alice"; }
if header :contains "from" "Smith, Alice" { fileinto :copy "Display"; }
