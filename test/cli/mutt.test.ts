// A real mail client, driven in tmux as a person drives it (issue 14 item 5), over the real
// loopback Dovecot and Postfix. Alice composes in mutt, whose `sendmail` is `offrecord
// sendmail`, and attaches a file; Bob's watcher delivers the message into his Maildir; Bob
// opens it in mutt and sees the text, the attachment and the verified sender; he replies from
// mutt; Alice's watcher delivers the reply, and her mutt threads it under her message. Then the
// same again with neomutt. Only the bootstrap (Bob's one plaintext mail carrying his keys) and
// the watchers are offrecord commands.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addLoopbackAccount, cliHome, homeEnv, ok, ROOT, spawnCli } from '../../kit/cli.ts';
import { captureOutput, until } from '../helpers/daemon.ts';
import { useMailServers } from '../../kit/mail-servers.ts';
import { requireTool } from '../../kit/require-tool.ts';
import { shellQuote, Terminal } from '../helpers/terminal.ts';

const servers = useMailServers();
const SLOW = 120_000; // the machine running the tests may be busy: a step waits this long at most

interface Person {
  name: 'Alice' | 'Bob';
  address: string;
  home: string;
  env: NodeJS.ProcessEnv;
  maildir: string;
  watcher?: ChildProcess;
}

/**
 * A muttrc for `person` (mutt and neomutt read the same): the offrecord Maildir as the mailbox,
 * `offrecord sendmail` as sendmail, copies of sent mail kept in the same Maildir (so a reply
 * threads under its message), the verified sender shown, and an editor that writes `text`.
 */
function muttrc(person: Person, text: string): string {
  const dir = join(person.home, 'mutt');
  mkdirSync(dir, { recursive: true });
  // What a user installs as `offrecord`: here the sources, run from the project.
  const offrecord = join(dir, 'offrecord');
  writeFileSync(
    offrecord,
    `#!/bin/sh\ncd ${shellQuote(ROOT)} && exec ${shellQuote(process.execPath)} --import tsx cli/offrecord.ts "$@"\n`,
  );
  chmodSync(offrecord, 0o755);
  // The person's typing in the editor: the body, after the headers mutt put there.
  const editor = join(dir, 'editor');
  writeFileSync(editor, `#!/bin/sh\nprintf '%s\\n' ${shellQuote(text)} >> "$1"\n`);
  chmodSync(editor, 0o755);
  const rc = join(dir, 'muttrc');
  writeFileSync(
    rc,
    [
      `set folder=${shellQuote(join(person.maildir, '..'))}`,
      `set spoolfile=${shellQuote(person.maildir)}`,
      `set record=${shellQuote(person.maildir)}`,
      'set mbox_type=Maildir',
      `set from=${shellQuote(`${person.name} <${person.address}>`)}`,
      'set use_envelope_from=yes',
      `set sendmail=${shellQuote(`${offrecord} sendmail`)}`,
      `set editor=${shellQuote(editor)}`,
      'set edit_headers=no',
      'set include=yes',
      'set fast_reply=yes',
      'set sort=threads',
      'set ascii_chars=yes',
      'set hide_thread_subject=no',
      'set pager_stop=yes',
      'set wait_key=no',
      'set mail_check=1',
      'set timeout=1',
      'set beep=no',
      'set confirmappend=no',
      'set mark_old=no',
      // Who really sent it, as offrecord wrote it into the delivered message (PROTOCOL §18.6 step 7).
      'ignore *',
      'unignore from: to: cc: subject: date: offrecord-verified-sender:',
      'hdr_order offrecord-verified-sender: from: to: cc: date: subject:',
      '',
    ].join('\n'),
  );
  return rc;
}

function startWatcher(person: Person): void {
  person.watcher = spawnCli(['watch', '--idle-restart', '30'], person.env);
  captureOutput(person.watcher);
}

async function stopWatcher(person: Person): Promise<void> {
  const child = person.watcher;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Opens `client` (mutt or neomutt) on `person`'s Maildir in tmux. */
async function open(client: string, person: Person, text: string): Promise<Terminal> {
  const terminal = Terminal.start([client, '-n', '-F', muttrc(person, text)], {
    env: { ...person.env, HOME: person.home },
    cwd: person.home,
  });
  await terminal.waitFor(/Mutt/, SLOW);
  return terminal;
}

/** Waits until the index lists a message whose line matches `line`, sending `$` (sync) now and then. */
async function waitForIndexLine(terminal: Terminal, line: RegExp): Promise<string> {
  const deadline = Date.now() + SLOW;
  for (;;) {
    const screen = await terminal.screen();
    if (screen.split('\n').some((l) => line.test(l))) return screen;
    if (Date.now() > deadline) assert.fail(`no index line matches ${line}; the screen shows:\n${screen}`);
    await terminal.keys('$');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe('mutt and neomutt, driven in tmux, talk through offrecord', () => {
  const alice = {} as Person;
  const bob = {} as Person;
  const attachment = { name: 'notes.txt', text: 'The notes for Friday: bring the plans.' };
  // Made here, not in before(): cliHome removes its homes after the suite it is called in.
  alice.home = cliHome('offrecord-alice-mutt-');
  bob.home = cliHome('offrecord-bob-mutt-');

  before(async () => {
    requireTool('mutt', 'mutt');
    requireTool('neomutt', 'neomutt');
    const s = servers();
    for (const [person, who] of [
      [alice, 'alice'],
      [bob, 'bob'],
    ] as const) {
      person.name = who === 'alice' ? 'Alice' : 'Bob';
      person.address = s.users[who].address;
      person.env = homeEnv(person.home, { MAIL_PW: s.users[who].pass });
      person.maildir = join(person.home, 'data/offrecord/mail', person.address);
      // The Maildir exists before anything is delivered, as a user creates it for mutt (or lets mutt create it).
      for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(person.maildir, sub), { recursive: true, mode: 0o700 });
      await ok(person.home, ['init', '--email', person.address, '--name', person.name]);
      await addLoopbackAccount(person.home, s, who);
    }
    writeFileSync(join(alice.home, attachment.name), `${attachment.text}\n`);
    // The bootstrap: Bob's one consented plaintext mail carries his keys to Alice.
    await ok(
      bob.home,
      ['send', '--to', alice.address, '--subject', 'my keys', '--plaintext'],
      'so that you can write to me off the record',
      bob.env,
    );
    await until(
      "Bob's keys at Alice",
      async () => /learned the offrecord keys/.test(await ok(alice.home, ['fetch'], '', alice.env)) || null,
      SLOW,
    );
    startWatcher(alice);
    startWatcher(bob);
  });
  after(async () => {
    await stopWatcher(alice);
    await stopWatcher(bob);
  });

  for (const client of ['mutt', 'neomutt'] as const) {
    it(`${client}: Alice sends with an attachment, Bob reads it with the verified sender and replies, the reply threads under her message`, async () => {
      const program = requireTool(client, client);
      const subject = `Lunch on Friday (${client})`;
      const question = `Shall we have lunch on Friday? Sent from ${client}.`;
      const answer = `Yes, Friday at noon. Replied from ${client}.`;

      // Alice composes: m, the recipient, the subject, the editor, then attaches the file and sends.
      const aliceTerm = await open(program, alice, question);
      try {
        await aliceTerm.keys('m');
        await aliceTerm.waitFor('To:', SLOW);
        await aliceTerm.type(bob.address);
        await aliceTerm.keys('Enter');
        await aliceTerm.waitFor('Subject:', SLOW);
        await aliceTerm.type(subject);
        await aliceTerm.keys('Enter');
        await aliceTerm.waitFor(/y:Send/, SLOW);
        await aliceTerm.keys('a');
        await aliceTerm.waitFor(/Attach file/, SLOW);
        await aliceTerm.type(join(alice.home, attachment.name));
        await aliceTerm.keys('Enter');
        await aliceTerm.waitFor(attachment.name, SLOW);
        await aliceTerm.keys('y');
        await aliceTerm.waitFor(/Mail sent|Sending in background/, SLOW);
        await aliceTerm.keys('q');
        await aliceTerm.waitForExit(SLOW);
      } finally {
        aliceTerm.close();
      }

      // Bob's watcher has delivered it; Bob opens it.
      const bobTerm = await open(program, bob, answer);
      try {
        await waitForIndexLine(bobTerm, new RegExp(`Alice.*${subject.replace(/[()]/g, '\\$&')}`));
        await bobTerm.keys('/');
        await bobTerm.type(`~s "${subject}"`);
        await bobTerm.keys('Enter');
        await bobTerm.keys('Enter');
        const shown = await bobTerm.waitFor(question, SLOW);
        assert.match(
          shown,
          new RegExp(`Offrecord-Verified-Sender: ${alice.address}; fingerprint=[0-9a-f]{8}`),
          'the verified sender is shown',
        );
        assert.match(shown, new RegExp(`From: Alice <${alice.address}>`));
        assert.ok(shown.includes(attachment.name), 'the attachment is named in the message');
        // The attachment menu lists it, and shows its content.
        await bobTerm.keys('v');
        await bobTerm.waitFor(/notes\.txt.*text\/plain/, SLOW);
        await bobTerm.keys('Down', 'Enter');
        await bobTerm.waitFor(attachment.text, SLOW);
        await bobTerm.keys('q');
        await bobTerm.waitFor(/notes\.txt.*text\/plain/, SLOW);
        await bobTerm.keys('q');
        // Bob replies from the message: the editor adds his answer; then send.
        await bobTerm.keys('r');
        await bobTerm.waitFor(/y:Send/, SLOW);
        await bobTerm.keys('y');
        await bobTerm.waitFor(/Mail sent|Sending in background/, SLOW);
        await bobTerm.keys('q', 'q');
        await bobTerm.waitForExit(SLOW);
      } finally {
        bobTerm.close();
      }

      // Alice's watcher delivers the reply; in her mutt it sits under her message.
      const aliceAgain = await open(program, alice, '');
      try {
        const screen = await waitForIndexLine(aliceAgain, new RegExp(`\`->.*Re: ${subject.replace(/[()]/g, '\\$&')}`));
        const lines = screen.split('\n');
        const parent = lines.findIndex((l) => l.includes(subject) && !l.includes('Re:'));
        const child = lines.findIndex((l) => l.includes(`Re: ${subject}`));
        assert.ok(parent >= 0 && child === parent + 1, `the reply threads right under Alice's message:\n${screen}`);
        assert.match(lines[child]!, /Bob/);
        await aliceAgain.keys('Down', 'Enter');
        const reply = await aliceAgain.waitFor(answer, SLOW);
        assert.match(reply, new RegExp(`Offrecord-Verified-Sender: ${bob.address}; fingerprint=`));
        await aliceAgain.keys('q', 'q');
        await aliceAgain.waitForExit(SLOW);
      } finally {
        aliceAgain.close();
      }
    });
  }
});
