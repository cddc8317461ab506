require "vnd.stalwart.expressions";
keep;
