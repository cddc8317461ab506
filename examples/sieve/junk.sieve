# Server-wide, before every user's script: mail the inbound checks or a
# scanner marked as spam goes to Junk, and the user's script does not run.
require ["fileinto", "mailbox"];

if anyof (header :is "X-Spam-Flag" "YES",
          header :contains "Authentication-Results" "dmarc=fail") {
    fileinto :create "Junk";
    stop;
}
