# plain.eml is 523 bytes with CRLF line ends.
require "fileinto";
if size :over 522 { fileinto "OverMinusOne"; }
if size :over 523 { fileinto :copy "OverExact"; }
if size :under 524 { fileinto :copy "UnderPlusOne"; }
if size :under 523 { fileinto :copy "UnderExact"; }
