//! What a simulated container "runs": the few commands tutorials and tests give short-lived
//! containers are recognised, without executing anything, so Jobs see their pods finish.
//!
//! A container's argv is its `command` followed by its `args` (as for images without an
//! entrypoint, such as busybox). Recognised: `sh -c SCRIPT` (also `bash`, `ash`, `dash`,
//! with any path such as `/bin/sh`), and, as a command or as the statements of a script
//! joined by `;`, `&&`, `||` or newlines: `exit [N]`, `sleep N` (seconds, or with an
//! `s`/`m`/`h`/`d` suffix; `sleep infinity` never ends), `true`, `false` and `echo ...`,
//! and one-line programs of `perl`, `python`, `ruby` and `node` (see [`one_liner`]).
//! Anything else (or no command at all, the image's own entrypoint) keeps running, as every
//! container did before.

use std::time::Duration;

/// How a container's process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// Runs until it is stopped.
    Forever,
    /// Exits with `code` this long after it starts.
    Exits { after: Duration, code: i32 },
}

/// The shells whose `-c` script is read.
const SHELLS: [&str; 4] = ["sh", "bash", "ash", "dash"];

/// What joins two statements of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    /// `;` or a newline: run the next one whatever happened.
    Then,
    /// `&&`: run the next one only after a success.
    And,
    /// `||`: run the next one only after a failure.
    Or,
}

impl Program {
    /// The program of a container with this `command` and these `args`.
    pub fn of(command: &[String], args: &[String]) -> Program {
        let argv: Vec<String> = command.iter().chain(args).cloned().collect();
        if argv.is_empty() {
            return Program::Forever;
        }
        run(&[(Join::Then, argv)]).unwrap_or(Program::Forever)
    }
}

/// The name a command is run by: `/bin/sh` is `sh`.
fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Runs the statements of a script; `None` when one is not recognised.
fn run(statements: &[(Join, Vec<String>)]) -> Option<Program> {
    let mut elapsed = Duration::ZERO;
    let mut status = 0;
    for (join, words) in statements {
        let skip = match join {
            Join::Then => false,
            Join::And => status != 0,
            Join::Or => status == 0,
        };
        if skip {
            continue;
        }
        let Some((name, rest)) = words.split_first() else {
            continue;
        };
        match (base(name), rest) {
            ("exit", []) => return Some(exit(elapsed, status)),
            ("exit", [code]) => return Some(exit(elapsed, code.parse::<i64>().ok()? as i32)),
            ("sleep", []) => status = 1,
            ("sleep", durations) => {
                for duration in durations {
                    if duration == "infinity" {
                        return Some(Program::Forever);
                    }
                    elapsed += sleep_duration(duration)?;
                }
                status = 0;
            }
            ("true", _) | ("echo", _) => status = 0,
            ("false", _) => status = 1,
            (shell, [flag, script, ..]) if SHELLS.contains(&shell) && flag == "-c" => {
                match run(&parse(script)?)? {
                    Program::Forever => return Some(Program::Forever),
                    Program::Exits { after, code } => {
                        elapsed += after;
                        status = code;
                    }
                }
            }
            (interpreter, rest) if INTERPRETERS.contains(&interpreter) => {
                match one_liner(interpreter, rest)? {
                    Some(code) => return Some(exit(elapsed, code)),
                    None => status = 0,
                }
            }
            _ => return None,
        }
    }
    Some(exit(elapsed, status))
}

/// Interpreters whose one-line programs (`perl -e`, `python -c`...) are read: the Job
/// tutorials' `perl -Mbignum=bpi -wle 'print bpi(2000)'` and their `-e 'exit N'` variants.
const INTERPRETERS: [&str; 5] = ["perl", "python", "python3", "ruby", "node"];

/// Reads the program an interpreter is given on its command line (`-e`, `-c`, or a bundle
/// of switches ending in `e`/`E` such as perl's `-wle`; other switches such as `-Mbignum=bpi`
/// are passed over). Recognised statements, split at `;` and newlines: `exit`, `exit N`,
/// `exit(N)`, `sys.exit(N)`, `process.exit(N)`, `os._exit(N)`, imports, and output
/// (`print`, `say`, `puts`, `printf`, `console.log`), which ends with 0. `Some(Some(code))`
/// for an explicit exit, `Some(None)` for a program that runs to its end, `None` for
/// anything else (a script file, a statement not recognised).
fn one_liner(interpreter: &str, args: &[String]) -> Option<Option<i32>> {
    let takes_program = |switch: &str| match interpreter {
        "python" | "python3" => switch == "-c",
        _ => {
            switch.starts_with('-')
                && !switch.starts_with("--")
                && !switch.starts_with("-M")
                && (switch.ends_with('e') || switch.ends_with('E'))
        }
    };
    let mut words = args.iter();
    let program = loop {
        let word = words.next()?;
        if takes_program(word) {
            break words.next()?;
        }
        if !word.starts_with('-') {
            return None;
        }
    };
    for statement in program.split([';', '\n']).map(str::trim) {
        // `name` as a whole word at the start, and what follows it.
        let call = |name: &str| {
            statement
                .strip_prefix(name)
                .filter(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
                .map(|rest| {
                    rest.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .trim()
                })
        };
        let exit_code = ["sys.exit", "process.exit", "os._exit", "exit"]
            .iter()
            .find_map(|name| call(name));
        if let Some(code) = exit_code {
            return Some(Some(match code {
                "" => 0,
                code => code.parse::<i64>().ok()? as i32,
            }));
        }
        let output = ["print", "say", "puts", "printf", "console.log"]
            .iter()
            .any(|name| call(name).is_some());
        let ignored = statement.is_empty()
            || statement.starts_with("import ")
            || statement.starts_with("use ");
        if !output && !ignored {
            return None;
        }
    }
    Some(None)
}

/// The shell's exit: codes are taken modulo 256, as the kernel keeps one byte.
fn exit(after: Duration, code: i32) -> Program {
    Program::Exits {
        after,
        code: code.rem_euclid(256),
    }
}

/// coreutils' `sleep` operand: a number of seconds with an optional unit.
fn sleep_duration(text: &str) -> Option<Duration> {
    let (number, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => return None,
    };
    let seconds: f64 = number.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds * scale))
}

/// Splits a script into statements of words, with the shell's quoting (`'...'`, `"..."`,
/// backslashes) and operators (`;`, `&&`, `||`, newlines). `None` for what this reading
/// does not follow: pipes, redirections, substitutions, unbalanced quotes.
fn parse(script: &str) -> Option<Vec<(Join, Vec<String>)>> {
    let mut statements = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut join = Join::Then;
    let mut chars = script.chars().peekable();
    let mut end_statement = |words: &mut Vec<String>, next: Join, join: &mut Join| {
        if !words.is_empty() {
            statements.push((*join, std::mem::take(words)));
        }
        *join = next;
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let text = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => text.push(c),
                    }
                }
            }
            '"' => {
                let text = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '$' | '`' => return None,
                        '\\' => text.push(chars.next()?),
                        c => text.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            ' ' | '\t' | ';' | '\n' | '&' | '|' => {
                words.extend(word.take());
                match c {
                    ';' | '\n' => end_statement(&mut words, Join::Then, &mut join),
                    '&' if chars.next_if_eq(&'&').is_some() => {
                        end_statement(&mut words, Join::And, &mut join)
                    }
                    '|' if chars.next_if_eq(&'|').is_some() => {
                        end_statement(&mut words, Join::Or, &mut join)
                    }
                    '&' | '|' => return None,
                    _ => {}
                }
            }
            '$' | '`' | '<' | '>' | '(' | ')' | '{' | '}' | '#' => return None,
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    end_statement(&mut words, Join::Then, &mut join);
    Some(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(argv: &[&str]) -> Program {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        Program::of(&argv, &[])
    }

    fn exits(seconds: u64, code: i32) -> Program {
        Program::Exits {
            after: Duration::from_secs(seconds),
            code,
        }
    }

    #[test]
    fn shell_scripts() {
        assert_eq!(program(&["sh", "-c", "exit 0"]), exits(0, 0));
        assert_eq!(program(&["sh", "-c", "exit 3"]), exits(0, 3));
        assert_eq!(program(&["/bin/sh", "-c", "sleep 5; exit 2"]), exits(5, 2));
        assert_eq!(
            program(&["bash", "-c", "echo hello && sleep 1"]),
            exits(1, 0)
        );
        assert_eq!(program(&["sh", "-c", "false || exit 4"]), exits(0, 4));
        assert_eq!(program(&["sh", "-c", "false && sleep 9"]), exits(0, 1));
        assert_eq!(program(&["sh", "-c", "false"]), exits(0, 1));
        assert_eq!(
            program(&["sh", "-c", "echo 'a; b' \"c\"\nexit"]),
            exits(0, 0)
        );
        assert_eq!(program(&["sh", "-c", "exit 300"]), exits(0, 44));
        assert_eq!(program(&["sh", "-c", "sh -c 'exit 7'"]), exits(0, 7));
    }

    #[test]
    fn plain_commands_and_split_arguments() {
        assert_eq!(program(&["sleep", "2"]), exits(2, 0));
        assert_eq!(program(&["sleep", "1m"]), exits(60, 0));
        assert_eq!(program(&["true"]), exits(0, 0));
        assert_eq!(program(&["/bin/false"]), exits(0, 1));
        assert_eq!(program(&["echo", "hello", "world"]), exits(0, 0));
        assert_eq!(program(&["exit", "5"]), exits(0, 5));
        let command = vec!["sh".to_string(), "-c".to_string()];
        assert_eq!(Program::of(&command, &["exit 1".into()]), exits(0, 1));
        assert_eq!(
            Program::of(&[], &["sleep".into(), "0.5".into()]),
            Program::Exits {
                after: Duration::from_millis(500),
                code: 0
            }
        );
    }

    #[test]
    fn anything_else_keeps_running() {
        assert_eq!(program(&[]), Program::Forever);
        assert_eq!(program(&["nginx", "-g", "daemon off;"]), Program::Forever);
        assert_eq!(program(&["sleep", "infinity"]), Program::Forever);
        assert_eq!(program(&["sh", "-c", "sleep 1; nginx"]), Program::Forever);
        assert_eq!(program(&["sh", "-c", "echo $HOME"]), Program::Forever);
        assert_eq!(program(&["sh", "-c", "cat x | grep y"]), Program::Forever);
        assert_eq!(
            program(&["sh", "-c", "while true; do sleep 1; done"]),
            Program::Forever
        );
        assert_eq!(program(&["sleep", "soon"]), Program::Forever);
        assert_eq!(program(&["perl", "script.pl"]), Program::Forever);
        assert_eq!(program(&["python3", "-c", "run()"]), Program::Forever);
        assert_eq!(
            program(&["python", "-c", "printer.run()"]),
            Program::Forever
        );
        assert_eq!(
            program(&["ruby", "-e", "loop { sleep 1 }"]),
            Program::Forever
        );
        assert_eq!(program(&["python", "-c", "exit(x)"]), Program::Forever);
    }

    #[test]
    fn interpreter_one_liners() {
        assert_eq!(program(&["perl", "-e", "exit 0"]), exits(0, 0));
        assert_eq!(program(&["perl", "-e", "exit 3;"]), exits(0, 3));
        assert_eq!(
            program(&["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]),
            exits(0, 0)
        );
        assert_eq!(
            program(&["python3", "-c", "import sys; print('hi'); sys.exit(2)"]),
            exits(0, 2)
        );
        assert_eq!(program(&["python", "-c", "print(42)"]), exits(0, 0));
        assert_eq!(program(&["node", "-e", "process.exit(1)"]), exits(0, 1));
        assert_eq!(program(&["ruby", "-e", "puts 'x'; exit 4"]), exits(0, 4));
        assert_eq!(
            program(&["sh", "-c", "sleep 2 && perl -e 'exit 5'"]),
            exits(2, 5)
        );
    }
}
