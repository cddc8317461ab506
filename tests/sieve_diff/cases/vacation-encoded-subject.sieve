# message: badfrom.eml
# from: alice@example.org
require "vacation";
vacation "Away.";
