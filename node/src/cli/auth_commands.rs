//! `raftcfg auth`, `raftcfg user` and `raftcfg role`: authentication on
//! and off, tokens, users and roles, through the client API (the caller
//! needs the root role once auth is on). Passwords are read from a flag,
//! an environment variable or the terminal without echo; they are never
//! printed.

use std::io::IsTerminal as _;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::client_commands::EndpointArgs;
use super::output::{OutputArgs, print_json, table};

/// `raftcfg auth`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Require credentials from now on (refused unless a user named root
    /// holds the root role).
    Enable(Plain),
    /// Stop requiring credentials.
    Disable(Plain),
    /// Print whether authentication is enabled.
    Status(WithOutput),
    /// Print a token for --user's password, for --token or RAFTCFG_TOKEN.
    Token(Plain),
}

/// `raftcfg user`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add(UserAddArgs),
    /// List users and their roles.
    List(WithOutput),
    /// Delete a user.
    Delete(NameArgs),
    /// Set a user's password (its tokens stop working).
    Passwd(PasswdArgs),
    /// Give a user a role.
    GrantRole(UserRoleArgs),
    /// Take a role from a user.
    RevokeRole(UserRoleArgs),
}

/// `raftcfg role`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Add a role, with no permission.
    Add(NameArgs),
    /// List roles and their permissions.
    List(WithOutput),
    /// Delete a role (and take it from every user).
    Delete(NameArgs),
    /// Grant read or readwrite access to the keys under a prefix.
    Grant(GrantArgs),
    /// Revoke a role's permission on a prefix.
    Revoke(RevokeArgs),
}

/// Only the cluster to talk to.
#[derive(Debug, Args)]
pub struct Plain {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// The cluster to talk to, and the output format.
#[derive(Debug, Args)]
pub struct WithOutput {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A user or role name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The name.
    pub name: String,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The user's name (for certificate sign-in, the certificate's common
    /// name).
    pub name: String,
    /// Its password; prompted for when absent (unless --no-password).
    #[arg(long, env = "RAFTCFG_NEW_PASSWORD", hide_env_values = true)]
    pub new_password: Option<String>,
    /// No password: the user signs in by client certificate only.
    #[arg(long, conflicts_with = "new_password")]
    pub no_password: bool,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg user passwd`.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The user.
    pub name: String,
    /// The new password; prompted for when absent.
    #[arg(long, env = "RAFTCFG_NEW_PASSWORD", hide_env_values = true)]
    pub new_password: Option<String>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg user grant-role` / `revoke-role`.
#[derive(Debug, Args)]
pub struct UserRoleArgs {
    /// The user.
    #[arg(value_name = "USER", id = "target_user")]
    pub user: String,
    /// The role.
    pub role: String,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg role grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The role.
    pub role: String,
    /// The key prefix ("" is every key).
    pub prefix: String,
    /// `read` or `readwrite`.
    #[arg(value_parser = ["read", "readwrite"])]
    pub access: String,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg role revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The role.
    pub role: String,
    /// The key prefix whose permission goes.
    pub prefix: String,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// Reads a password from the terminal without echo; refuses when there
/// is no terminal to ask.
pub(super) fn prompt_password(prompt: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password given and no terminal to ask for one: use --password or RAFTCFG_PASSWORD"
        );
    }
    Ok(rpassword::prompt_password(prompt)?)
}

/// A new password from `given`, or asked for twice.
fn new_password(given: Option<String>, user: &str) -> anyhow::Result<String> {
    if let Some(password) = given {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no new password given and no terminal to ask for one: use --new-password or RAFTCFG_NEW_PASSWORD"
        );
    }
    let first = rpassword::prompt_password(format!("new password of {user}: "))?;
    let again = rpassword::prompt_password("again: ")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}

pub(super) async fn auth(command: AuthCommand) -> anyhow::Result<()> {
    match command {
        AuthCommand::Enable(args) => {
            args.endpoints.client()?.auth_enable().await?;
            println!("authentication enabled");
        }
        AuthCommand::Disable(args) => {
            args.endpoints.client()?.auth_disable().await?;
            println!("authentication disabled");
        }
        AuthCommand::Status(args) => {
            let status = args.endpoints.client()?.auth_status().await?;
            if args.output.json() {
                print_json(&status)?;
            } else {
                let state = if status.enabled {
                    "enabled"
                } else {
                    "disabled"
                };
                println!("authentication {state}");
            }
        }
        AuthCommand::Token(args) => {
            let (Some(user), password) = (&args.endpoints.user, &args.endpoints.password) else {
                bail!("a token is for a user's password: give --user");
            };
            let password = match password {
                Some(password) => password.clone(),
                None => prompt_password(&format!("password of {user}: "))?,
            };
            let mut anonymous = args.endpoints.clone();
            anonymous.user = None;
            anonymous.password = None;
            let answer = anonymous.client()?.token(user, &password).await?;
            println!("{}", answer.token);
        }
    }
    Ok(())
}

pub(super) async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => {
            let client = args.endpoints.client()?;
            let password = if args.no_password {
                None
            } else {
                Some(new_password(args.new_password, &args.name)?)
            };
            client.add_user(&args.name, password.as_deref()).await?;
            println!("added user {}", args.name);
        }
        UserCommand::List(args) => {
            let list = args.endpoints.client()?.users().await?;
            if args.output.json() {
                print_json(&list)?;
            } else {
                let rows = list
                    .users
                    .iter()
                    .map(|user| {
                        vec![
                            user.name.clone(),
                            user.roles.join(","),
                            if user.has_password { "yes" } else { "no" }.to_owned(),
                        ]
                    })
                    .collect::<Vec<_>>();
                print!("{}", table(&["NAME", "ROLES", "PASSWORD"], &rows));
            }
        }
        UserCommand::Delete(args) => {
            args.endpoints.client()?.delete_user(&args.name).await?;
            println!("deleted user {}", args.name);
        }
        UserCommand::Passwd(args) => {
            let client = args.endpoints.client()?;
            let password = new_password(args.new_password, &args.name)?;
            client.set_password(&args.name, &password).await?;
            println!("set the password of {}", args.name);
        }
        UserCommand::GrantRole(args) => {
            let client = args.endpoints.client()?;
            client.grant_role(&args.user, &args.role).await?;
            println!("granted role {} to {}", args.role, args.user);
        }
        UserCommand::RevokeRole(args) => {
            let client = args.endpoints.client()?;
            client.revoke_role(&args.user, &args.role).await?;
            println!("revoked role {} from {}", args.role, args.user);
        }
    }
    Ok(())
}

pub(super) async fn role(command: RoleCommand) -> anyhow::Result<()> {
    match command {
        RoleCommand::Add(args) => {
            args.endpoints.client()?.add_role(&args.name).await?;
            println!("added role {}", args.name);
        }
        RoleCommand::List(args) => {
            let list = args.endpoints.client()?.roles().await?;
            if args.output.json() {
                print_json(&list)?;
            } else {
                let rows = list
                    .roles
                    .iter()
                    .map(|role| {
                        let permissions = if role.name == "root" {
                            "everything".to_owned()
                        } else {
                            role.permissions
                                .iter()
                                .map(|p| format!("{}:{:?}", p.access, p.prefix))
                                .collect::<Vec<_>>()
                                .join(" ")
                        };
                        vec![role.name.clone(), permissions]
                    })
                    .collect::<Vec<_>>();
                print!("{}", table(&["NAME", "PERMISSIONS"], &rows));
            }
        }
        RoleCommand::Delete(args) => {
            args.endpoints.client()?.delete_role(&args.name).await?;
            println!("deleted role {}", args.name);
        }
        RoleCommand::Grant(args) => {
            let client = args.endpoints.client()?;
            client
                .grant_permission(&args.role, &args.prefix, &args.access)
                .await?;
            println!(
                "granted {} on {:?} to role {}",
                args.access, args.prefix, args.role
            );
        }
        RoleCommand::Revoke(args) => {
            let client = args.endpoints.client()?;
            client.revoke_permission(&args.role, &args.prefix).await?;
            println!(
                "revoked role {}'s permission on {:?}",
                args.role, args.prefix
            );
        }
    }
    Ok(())
}
