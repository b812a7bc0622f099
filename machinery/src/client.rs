//! How a component finds and authenticates to the API server, as upstream's
//! `clientcmd.BuildConfigFromFlags`: `--kubeconfig` if given, else `$KUBECONFIG`, `~/.kube/config`
//! or the in-cluster service account; `--master` overrides the server address.

use std::path::PathBuf;

/// Upstream's `--kubeconfig` and `--master` flags, flattened into each component's options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// Path to kubeconfig file with authorization and master location information (default:
    /// $KUBECONFIG, ~/.kube/config or the in-cluster service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The address of the Kubernetes API server (overrides any value in kubeconfig).
    #[arg(long)]
    pub master: Option<String>,
}

/// Why no client could be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("no --kubeconfig and {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("--master {0:?} is not a URL")]
    Master(String),
    #[error(transparent)]
    Client(#[from] kube::Error),
}

impl ClientArgs {
    /// The connection settings the flags describe.
    pub async fn config(&self) -> Result<kube::Config, ClientError> {
        let mut config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                    ClientError::Kubeconfig {
                        path: path.clone(),
                        source,
                    }
                })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .map_err(|source| ClientError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })?
            }
            None => kube::Config::infer().await?,
        };
        if let Some(master) = &self.master {
            config.cluster_url = master
                .parse()
                .map_err(|_| ClientError::Master(master.clone()))?;
        }
        Ok(config)
    }

    /// A client for the API server the flags describe.
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_kubeconfig_names_the_file() {
        let args = ClientArgs {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            master: None,
        };
        let error = args.config().await.unwrap_err().to_string();
        assert!(
            error.starts_with("kubeconfig /nonexistent/kubeconfig: "),
            "{error}"
        );
    }

    #[tokio::test]
    async fn master_overrides_the_kubeconfig_server() {
        let dir = std::env::temp_dir().join(format!("machinery-client-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://10.0.0.1:6443'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
        )
        .unwrap();
        let mut args = ClientArgs {
            kubeconfig: Some(path),
            master: None,
        };
        assert_eq!(
            args.config().await.unwrap().cluster_url.to_string(),
            "https://10.0.0.1:6443/"
        );
        args.master = Some("https://127.0.0.1:7443".into());
        assert_eq!(
            args.config().await.unwrap().cluster_url.to_string(),
            "https://127.0.0.1:7443/"
        );
        args.master = Some("not a url".into());
        assert!(matches!(args.config().await, Err(ClientError::Master(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
