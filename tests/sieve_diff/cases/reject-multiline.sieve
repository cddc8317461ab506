require "reject";
reject text:
Go away.
Really.
.
;
