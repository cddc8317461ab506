# Bob's alias dave+news@example.com is only in Cc.
# user: dave@example.com
# to: dave+news@example.com
require "vacation";
vacation :addresses "dave+news@example.com" :subject "Away" "Away.";
