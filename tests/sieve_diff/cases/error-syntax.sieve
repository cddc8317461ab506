require "fileinto";

fileinto "a"
stop;
