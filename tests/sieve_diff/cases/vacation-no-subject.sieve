# message: nosubject.eml
require "vacation";
vacation "Away.";
