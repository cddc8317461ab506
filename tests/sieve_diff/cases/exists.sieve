require "fileinto";
if exists ["from", "date", "x-priority"] { fileinto "All"; }
if exists ["from", "x-missing"] { fileinto "Never"; }
